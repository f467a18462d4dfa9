"""HTTP routes of the identity platform: discovery, keys, token. They adapt requests to the protocol."""
