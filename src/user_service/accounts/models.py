"""The accounts tables, defined once: Alembic compares migrations against them."""

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, CITEXT, JSONB, UUID

from ..database import metadata

_NOW = func.now()

# A person's account: a user (same id) with an email and a password.
accounts = Table(
    "accounts",
    metadata,
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # As the person spelt it: shown, and written to. citext: searched case-insensitively.
    Column("email", CITEXT, nullable=False),
    # The address as every comparison sees it (addresses.key): the unique index, lookups.
    Column("email_key", Text, nullable=False, unique=True),
    Column("email_verified_at", DateTime(timezone=True)),
    Column("password_hash", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("last_sign_in_at", DateTime(timezone=True)),
    Column("disabled_at", DateTime(timezone=True)),
    # Admins search users by email substring (users/repository.py): trigrams, not a scan.
    Index(
        "ix_accounts_email_trgm",
        "email",
        postgresql_using="gin",
        postgresql_ops={"email": "gin_trgm_ops"},
    ),
)

# One-time links sent by email: verify an address, reset a password. Only hashes are kept.
account_tokens = Table(
    "account_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("purpose", Text, nullable=False),  # verify | reset
    Column("email", CITEXT, nullable=False),  # the address it was sent to (verify: to confirm)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_account_tokens_user_id", "user_id"),
)

# A signed-in device: refresh tokens rotate within it, access tokens name it (`sid`).
auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("last_used_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("client_address", Text),
    Column("user_agent", Text),
    Index("ix_auth_sessions_user_id", "user_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column(
        "session_id",
        UUID(as_uuid=True),
        ForeignKey("auth_sessions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_refresh_tokens_session_id", "session_id"),
)

# The keys access tokens are signed with; the private half encrypted by AUTH_SECRET_KEY.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", Text, primary_key=True),
    Column("private_key", LargeBinary, nullable=False),
    Column("public_jwk", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
)

# Counters shared by every worker: requests per address per minute, failed sign-ins per email.
throttles = Table(
    "throttles",
    metadata,
    Column("key", Text, primary_key=True),
    Column("window_start", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("count", Integer, nullable=False, server_default=text("0")),
    Column("blocked_until", DateTime(timezone=True)),
)
