"""The `entryway` command."""
