"""Runtime settings and the declarative YAML config file (a public interface, see docs/config.md)."""
