"""The Azure DevOps-compatible service. It trusts the identity platform only as a resource server does:
OIDC discovery and keys over HTTPS, never the identity platform's tables."""
