"""The notification outbox: what the DevOps service would mail a user; the CLI and the PAT page show it."""
