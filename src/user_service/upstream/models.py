"""The upstream sign-in's table, defined once: Alembic compares migrations against it."""

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, Index, Table, Text, func

from ..database import metadata

# An identity at a company's identity provider (its name in SIGNIN_PROVIDERS, and the
# subject it gives the person), and the account it signs in to.
identities = Table(
    "identities",
    metadata,
    Column("provider", Text, primary_key=True),
    Column("subject", Text, primary_key=True),
    Column(
        "user_id", BigInteger, ForeignKey("accounts.user_id", ondelete="CASCADE"), nullable=False
    ),
    Column("email", Text),  # as the provider said it, when it was linked
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True)),
    Index("ix_identities_user_id", "user_id"),
)
