"""Continuous access evaluation at the DevOps service: the identity platform's critical events (the
`cae_events` outbox) read into per-process state (feed.py), and the checks request authentication applies to
Entra tokens and PATs with them (checks.py). docs/continuous-access-evaluation.md."""
