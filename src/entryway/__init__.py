"""Entryway: a self-hosted Entra ID compatible identity platform and Azure DevOps compatible service."""

__version__ = "0.1.0"
