"""The users table, defined once: Alembic compares migrations against it."""

from sqlalchemy import BigInteger, Column, DateTime, Identity, Index, Table, Text, func, text

from ..database import metadata

users = Table(
    "users",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("nickname", Text, nullable=False, server_default=text("'unnamed'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Searching names by substring (ILIKE '%…%') on a million users: trigrams, not a scan.
    Index(
        "ix_users_nickname_trgm",
        "nickname",
        postgresql_using="gin",
        postgresql_ops={"nickname": "gin_trgm_ops"},
    ),
    # Keyset paging by creation time: (created_at, id) is unique, so pages never overlap.
    Index("ix_users_created_at_id", "created_at", "id"),
)
