"""Token grants. Each grant owns only what differs: which parameters it needs and what the token is about."""
