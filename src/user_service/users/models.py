"""The users table, defined once: Alembic compares migrations against it."""

from sqlalchemy import BigInteger, Column, Identity, Table, Text, text

from ..database import metadata

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("nickname", Text, nullable=False, server_default=text("'unnamed'")),
)
