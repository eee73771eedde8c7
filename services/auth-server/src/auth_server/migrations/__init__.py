"""Alembic revisions of the auth-server's schema (tables.py), applied by oauth_tokens.database.migrate."""
