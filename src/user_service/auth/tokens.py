"""API tokens: random secrets of which only a SHA-256 hash is stored, each granting scopes."""

import hashlib
import re
import secrets
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

from ..database import Database, metadata

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

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


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


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def parse_duration(value: str) -> timedelta:
    """`90d`, `12h`, `30m`, `45s` or `2w` as a timedelta."""
    match = _DURATION.fullmatch(value.strip())
    if not match or int(match[1]) == 0:
        raise TokenError(f"expected a duration such as 90d, 12h or 30m, not {value!r}")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


async def create(
    connection: asyncpg.Connection,
    name: str,
    scopes: list[str],
    expires_in: timedelta | None = None,
) -> str:
    """Store a new token's hash; the token itself, which exists nowhere else."""
    token = PREFIX + secrets.token_urlsafe(32)
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


async def list_all(connection: asyncpg.Connection) -> list[TokenInfo]:
    rows = await connection.fetch(
        "SELECT name, scopes, created_at, expires_at, last_used_at, revoked_at "
        "FROM api_tokens ORDER BY created_at, id"
    )
    return [TokenInfo(**row) for row in rows]


async def revoke(connection: asyncpg.Connection, name: str) -> bool:
    """Revoke the live token of this name; whether there was one."""
    revoked: bool | None = await connection.fetchval(
        "UPDATE api_tokens SET revoked_at = now() "
        "WHERE name = $1 AND revoked_at IS NULL RETURNING true",
        name,
    )
    return bool(revoked)


async def is_live(connection: asyncpg.Connection, token: str) -> bool:
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
