"""HTTP routes of the DevOps service, and the wire shapes of its answers."""
