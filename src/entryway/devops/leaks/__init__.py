"""Leaked-PAT reports from secret-scanning partners: who may report (their signing keys), what they reported,
and what was done (revoked or the owner told)."""
