"""The OpenID Provider's tables, defined once: Alembic compares migrations against them.
An application's grant is a session (auth_sessions.client_id): its refresh tokens rotate,
and a replayed one ends it, as a browser's do."""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from ..database import metadata

_NOW = func.now()

# An application that signs people in through us (RFC 7591 metadata).
oauth_clients = Table(
    "oauth_clients",
    metadata,
    Column("id", Text, primary_key=True),  # client_id
    Column("name", Text, nullable=False),
    Column("secret_hash", LargeBinary),  # SHA-256 of the secret; None for a public client
    Column("redirect_uris", ARRAY(Text), nullable=False),
    Column("post_logout_redirect_uris", ARRAY(Text), nullable=False, server_default=text("'{}'")),
    Column("grant_types", ARRAY(Text), nullable=False),
    Column("auth_method", Text, nullable=False),  # token_endpoint_auth_method
    Column("scopes", ARRAY(Text), nullable=False),  # the most it may ask for
    Column("id_token_alg", Text, nullable=False, server_default=text("'RS256'")),
    Column("first_party", Boolean, nullable=False, server_default=text("false")),  # no consent
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
)

# An authorization code: 60 seconds, once, for one client, redirect URI and PKCE challenge.
oauth_codes = Table(
    "oauth_codes",
    metadata,
    Column("code_hash", LargeBinary, primary_key=True),
    Column("client_id", Text, ForeignKey("oauth_clients.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", BigInteger, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("browser_session", UUID(as_uuid=True), nullable=False),  # the ID token's sid
    Column("redirect_uri", Text, nullable=False),
    Column("code_challenge", Text, nullable=False),  # S256
    Column("scopes", ARRAY(Text), nullable=False),
    Column("nonce", Text),
    Column("auth_time", DateTime(timezone=True), nullable=False),
    Column("amr", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("grant_id", UUID(as_uuid=True)),  # the session its exchange opened
)

# What a person allowed an application: asked again only for more.
oauth_consents = Table(
    "oauth_consents",
    metadata,
    Column(
        "user_id", BigInteger, ForeignKey("accounts.user_id", ondelete="CASCADE"), primary_key=True
    ),
    Column("client_id", Text, ForeignKey("oauth_clients.id", ondelete="CASCADE"), primary_key=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False, server_default=_NOW),
    Index("ix_oauth_consents_client_id", "client_id"),
)
