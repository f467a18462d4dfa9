"""Pure OAuth 2.0 / OpenID Connect as Entra speaks it: no web framework and no database here."""
