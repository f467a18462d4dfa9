"""Managed identities as the host's token endpoints see them: which identities this host carries, which one a
request names, and the token issued for it."""
