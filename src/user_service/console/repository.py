"""All SQL of the pages that is theirs alone (the flows' SQL is the accounts' and users')."""

from datetime import timedelta
from typing import cast
from uuid import UUID

import asyncpg

from ..audit.repository import Context, record
from ..auth import tokens
from ..database import Connection, Database


async def visitor(db: Database, session_id: UUID) -> asyncpg.Record | None:
    """The account signed in to this session, while the session is live and the account
    enabled; the session's last use is recorded."""
    return await db.fetchrow(
        "UPDATE auth_sessions s SET last_used_at = now() FROM accounts a JOIN users u "
        "ON u.id = a.user_id WHERE s.id = $1 AND a.user_id = s.user_id "
        "AND s.revoked_at IS NULL AND s.expires_at > now() AND a.disabled_at IS NULL "
        "RETURNING s.id AS session_id, a.user_id, a.email, a.scopes, u.nickname",
        session_id,
    )


async def overview(db: Database) -> asyncpg.Record:
    """The counts on the overview: users, accounts, verified accounts, live sessions, and
    sign-ins and sign-ups in the last 24 hours."""
    record = await db.fetchrow(
        "SELECT (SELECT count(*) FROM users) AS users, "
        "(SELECT count(*) FROM accounts) AS accounts, "
        "(SELECT count(*) FROM accounts WHERE email_verified_at IS NOT NULL) AS verified, "
        "(SELECT count(*) FROM auth_sessions WHERE revoked_at IS NULL AND expires_at > now()) "
        "AS sessions, "
        "(SELECT count(*) FROM audit_events WHERE kind = 'signin.succeeded' "
        "AND at > now() - interval '24 hours') AS signins, "
        "(SELECT count(*) FROM audit_events WHERE kind = 'account.registered' "
        "AND at > now() - interval '24 hours') AS signups"
    )
    return cast(asyncpg.Record, record)  # a SELECT without FROM always yields its row


async def daily(db: Database, days: int) -> list[asyncpg.Record]:
    """Sign-ups and sign-ins on each of the last `days` days (UTC), oldest first; a day
    without any is there with zeros."""
    return await db.fetch(
        "WITH d AS (SELECT generate_series(date_trunc('day', now() AT TIME ZONE 'UTC') "
        "- ($1 - 1) * interval '1 day', date_trunc('day', now() AT TIME ZONE 'UTC'), "
        "interval '1 day') AS day) "
        "SELECT d.day::date AS day, "
        "count(e.id) FILTER (WHERE e.kind = 'account.registered') AS signups, "
        "count(e.id) FILTER (WHERE e.kind = 'signin.succeeded') AS signins "
        "FROM d LEFT JOIN audit_events e ON e.kind IN ('account.registered', 'signin.succeeded') "
        "AND e.at >= d.day AT TIME ZONE 'UTC' "
        "AND e.at < (d.day + interval '1 day') AT TIME ZONE 'UTC' "
        "GROUP BY d.day ORDER BY d.day",
        days,
    )


async def user(db: Database, user_id: int) -> asyncpg.Record | None:
    """A user as operators see it: with its account's state, if it has an account."""
    return await db.fetchrow(
        "SELECT u.id, u.nickname, u.created_at, a.user_id IS NOT NULL AS has_account, a.email, "
        "a.email_verified_at, a.last_sign_in_at, a.disabled_at, a.scopes "
        "FROM users u LEFT JOIN accounts a ON a.user_id = u.id WHERE u.id = $1",
        user_id,
    )


_EVENTS = (
    "SELECT id, at, kind, actor, subject_user_id, client_address, request_id, details "
    "FROM audit_events WHERE ($2::bigint IS NULL OR subject_user_id = $2) "
    "AND ($3::text IS NULL OR kind = $3) "
)
_NEWEST = _EVENTS + "AND id < $1 ORDER BY id DESC LIMIT $4"
_OLDEST = _EVENTS + "AND id > $1 ORDER BY id LIMIT $4"


async def events(
    db: Database,
    *,
    after: int | None,
    limit: int,
    user_id: int | None,
    kind: str | None,
    newest_first: bool,
) -> tuple[list[asyncpg.Record], bool]:
    """Up to `limit` audit events past the one with id `after` (from the start when None),
    newest or oldest first; and whether more follow."""
    # From the start: past the largest bigint, or below the smallest id.
    start = after if after is not None else (2**63 - 1 if newest_first else 0)
    query = _NEWEST if newest_first else _OLDEST
    rows = await db.fetch(query, start, user_id, kind, limit + 1)
    return rows[:limit], len(rows) > limit


def _plain(connection: Connection) -> asyncpg.Connection:
    # tokens.py is typed for the CLI's own connection; a pool's proxy answers the same calls.
    return cast(asyncpg.Connection, connection)


async def create_token(
    db: Database, context: Context, *, name: str, scopes: list[str], expires_in: timedelta | None
) -> str:
    """A new API token, its creation recorded: the secret, which exists nowhere else."""
    async with db.transaction() as connection:
        secret = await tokens.create(_plain(connection), name, scopes, expires_in)
        await record(connection, context, "api_token.created", None, name=name, scopes=scopes)
    return secret


async def revoke_token(db: Database, context: Context, *, name: str) -> bool:
    """Revoke the live token of this name, recorded; whether there was one."""
    async with db.transaction() as connection:
        revoked = await tokens.revoke(_plain(connection), name)
        if revoked:
            await record(connection, context, "api_token.revoked", None, name=name)
    return revoked


async def list_tokens(db: Database) -> list[tokens.TokenInfo]:
    async with db.transaction() as connection:
        return await tokens.list_all(_plain(connection))
