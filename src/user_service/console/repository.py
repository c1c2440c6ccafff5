"""All SQL of the pages that is theirs alone: the overview's counts and chart."""

from typing import cast

import asyncpg

from ..database import Database


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
