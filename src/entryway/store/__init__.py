"""Storage: the SQLAlchemy models in one place, engine and session handling, Alembic migrations."""
