"""Projects, their Git repository records and project roles (router -> service -> repository)."""
