"""User sign-in: what a person's authentication leaves behind (sessions, codes, refresh tokens, consent)."""
