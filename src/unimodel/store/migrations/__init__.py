"""Alembic migrations for the store, run by `Store.open` (see migrate.py); no alembic.ini is needed."""
