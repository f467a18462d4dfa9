"""The Entra-compatible identity platform."""
