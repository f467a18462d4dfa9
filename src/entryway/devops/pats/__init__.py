"""Personal access tokens: their format, scopes and lifecycle API (router -> service -> repository)."""
