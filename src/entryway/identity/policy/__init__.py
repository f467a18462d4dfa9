"""Conditional Access: policies and named locations in Microsoft Graph's shape, and their evaluation. No I/O."""
