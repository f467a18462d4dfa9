"""The directory: tenants, users, app registrations, service principals and their credentials."""
