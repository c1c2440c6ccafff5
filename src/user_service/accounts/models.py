"""The accounts tables, defined once: Alembic compares migrations against them."""

from sqlalchemy import (
    BigInteger,
    Boolean,
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
    # How it was signed in to (RFC 8176 values: pwd, otp, hwk, swk, mfa): tokens carry it.
    Column("amr", ARRAY(Text), nullable=False, server_default=text("'{pwd}'")),
    # An application's grant (the OpenID Provider's), not a device: the client, and the
    # scopes the person allowed it.
    Column("client_id", Text, ForeignKey("oauth_clients.id", ondelete="CASCADE")),
    Column("scopes", ARRAY(Text)),
    Index("ix_auth_sessions_user_id", "user_id"),
    Index("ix_auth_sessions_client_id", "client_id"),
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


# Second factors. An authenticator app's secret (RFC 6238), encrypted by AUTH_SECRET_KEY;
# pending until a code confirms it. last_step: the newest time step accepted, which no code
# may use again (§5.2).
totp_secrets = Table(
    "totp_secrets",
    metadata,
    Column(
        "user_id", BigInteger, ForeignKey("accounts.user_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("secret", LargeBinary, nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Column("last_step", BigInteger, nullable=False, server_default=text("0")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
)

# Single-use codes for when the authenticator is lost: only their SHA-256 is kept.
recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column(
        "user_id", BigInteger, ForeignKey("accounts.user_id", ondelete="CASCADE"), nullable=False
    ),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_recovery_codes_user_id", "user_id"),
)

# WebAuthn credentials (passkeys): the public key, and the signature counter the
# authenticator last reported (a clone's lower count gives it away).
passkeys = Table(
    "passkeys",
    metadata,
    Column("id", UUID(as_uuid=True), primary_key=True, server_default=func.gen_random_uuid()),
    Column(
        "user_id", BigInteger, ForeignKey("accounts.user_id", ondelete="CASCADE"), nullable=False
    ),
    Column("credential_id", LargeBinary, nullable=False, unique=True),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("name", Text, nullable=False),
    Column("synced", Boolean, nullable=False),  # backed up: a software key (amr swk)
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("last_used_at", DateTime(timezone=True)),
    Index("ix_passkeys_user_id", "user_id"),
)

# A sign-in halfway: the password was right, the second factor is due. The token is shown
# once (only its hash is kept), lives 5 minutes and completes one sign-in. A WebAuthn
# challenge (a passkey's) is kept here or, for a passkey sign-in or a new passkey, alone.
sign_in_challenges = Table(
    "sign_in_challenges",
    metadata,
    Column("token_hash", LargeBinary, primary_key=True),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE")),
    Column("purpose", Text, nullable=False),  # second-factor | passkey | new-passkey
    Column("webauthn_challenge", LargeBinary),
    Column("replacing", UUID(as_uuid=True)),  # a browser's session the sign-in ends
    # The sign-in's first factor, as amr: pwd, or fed:<provider> (upstream/).
    Column("first_factor", Text, nullable=False, server_default=text("'pwd'")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Index("ix_sign_in_challenges_user_id", "user_id"),
)
