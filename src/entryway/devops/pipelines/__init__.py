"""Pipelines: YAML pipeline definitions, their variables, runs executed the way an agent runs a job, masked
logs, and the job tokens (System.AccessToken) a run holds while it runs."""
