"""Organizations connected to a tenant, and their members by Entra object id."""
