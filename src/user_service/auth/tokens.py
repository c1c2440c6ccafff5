"""API tokens: random secrets of which only a SHA-256 hash is stored, each granting scopes."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from ..crypto import digest, new_token
from ..database import Connection, Database, metadata

# Marks our tokens apart from JWTs, and lets secret scanners recognise a leaked one.
PREFIX = "ust_"

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("name", Text, nullable=False),
    # A token carries 256 random bits: a fast hash is enough, no guessable input to stretch.
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True)),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    # A name is unique among live tokens; a revoked token keeps its row as a record.
    Index(
        "ix_api_tokens_live_name", "name", unique=True, postgresql_where=text("revoked_at IS NULL")
    ),
)


class TokenError(ValueError):
    """A token operation that cannot be done as asked; the message says why."""


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


async def create(
    connection: Connection,
    name: str,
    scopes: list[str],
    expires_in: timedelta | None = None,
) -> str:
    """Store a new token's hash; the token itself, which exists nowhere else."""
    token = new_token(PREFIX)
    try:
        await connection.execute(
            "INSERT INTO api_tokens (name, token_hash, scopes, expires_at) "
            "VALUES ($1, $2, $3, now() + $4::interval)",
            name,
            digest(token),
            scopes,
            expires_in,
        )
    except asyncpg.UniqueViolationError:
        raise TokenError(f"a token named {name!r} already exists; revoke it first") from None
    return token


async def list_all(connection: Connection | Database) -> list[TokenInfo]:
    rows = await connection.fetch(
        "SELECT name, scopes, created_at, expires_at, last_used_at, revoked_at "
        "FROM api_tokens ORDER BY created_at, id"
    )
    return [TokenInfo(**row) for row in rows]


async def revoke(connection: Connection, name: str) -> bool:
    """Revoke the live token of this name; whether there was one."""
    revoked: bool | None = await connection.fetchval(
        "UPDATE api_tokens SET revoked_at = now() "
        "WHERE name = $1 AND revoked_at IS NULL RETURNING true",
        name,
    )
    return bool(revoked)


async def live_scopes(db: Connection | Database, name: str) -> list[str] | None:
    """The scopes of the live token of this name, if there is one."""
    scopes: list[str] | None = await db.fetchval(
        "SELECT scopes FROM api_tokens WHERE name = $1 AND revoked_at IS NULL", name
    )
    return scopes


async def is_live(connection: Connection, token: str) -> bool:
    """The token exists, is not revoked and has not expired."""
    live: bool = await connection.fetchval(
        "SELECT EXISTS (SELECT FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > now()))",
        digest(token),
    )
    return live


async def use(db: Database, token: str) -> asyncpg.Record | None:
    """The token's name, scopes, expiry and revocation, its use recorded; None if unknown."""
    return await db.fetchrow(
        "UPDATE api_tokens SET last_used_at = now() WHERE token_hash = $1 "
        "RETURNING name, scopes, expires_at, revoked_at",
        digest(token),
    )
