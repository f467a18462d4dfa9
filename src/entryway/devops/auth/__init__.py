"""Request authentication: credential parsing and verification -> Principal, and the 401 challenge."""
