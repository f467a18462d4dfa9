"""The config file's one error type, in a module of its own so that the CLI can catch it without importing
everything the config can set up (config/declarative.py imports every service)."""

from __future__ import annotations


class ConfigError(ValueError):
    """The config file is wrong; the message names where."""
