"""Token signing keys: creation, encryption at rest, compare-and-swap rotation, JWKS rendering."""
