"""All SQL for the audit log."""

import json
from typing import Any

import asyncpg

from ..context import Context
from ..database import Connection, Database
from ..webhooks.events import ACCOUNT, FROM_AUDIT, PUBLIC_DETAILS, queue
from .kinds import Kind


async def record(
    db: Database | Connection,
    context: Context,
    kind: Kind,
    subject_user_id: int | None,
    **details: Any,
) -> None:
    """Append an event, and queue the webhooks' events of this change (if it sends any) in
    the same statement. `details` must never hold a password or a token."""
    event = (
        context.actor,
        subject_user_id,
        context.client_address,
        context.request_id,
        json.dumps(details),
    )
    types = FROM_AUDIT.get(kind)
    if types is None:
        await db.fetchval(_RECORD, kind, *event)
        return
    public = {key: value for key, value in details.items() if key in PUBLIC_DETAILS}
    await db.fetchval(_RECORD_AND_QUEUE, kind, *event, list(types), json.dumps(public))


_RECORD = (
    "INSERT INTO audit_events (kind, actor, subject_user_id, client_address, request_id, "
    "details) VALUES ($1, $2, $3, $4, $5, $6)"
)
# $7 the event types, $8 the details they carry (PUBLIC_DETAILS).
_RECORD_AND_QUEUE = (  # built from constants only
    f"WITH audit AS ({_RECORD}), "  # noqa: S608
    + queue(
        "t.type",
        "unnest($7::text[]) t(type) "
        "LEFT JOIN (SELECT id, nickname, created_at FROM users) u ON u.id = $3 "
        "LEFT JOIN accounts a ON a.user_id = u.id",
        "$3::bigint",
        f"coalesce(to_jsonb(u) || {ACCOUNT}, jsonb_build_object('id', $3::bigint)) "
        "|| jsonb_strip_nulls(jsonb_build_object('details', NULLIF($8::jsonb, '{}')))",
        listed="$7::text[]",
    )
    + " SELECT 1"
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
    user_id: int | None = None,
    kind: str | None = None,
    newest_first: bool = False,
) -> tuple[list[asyncpg.Record], bool]:
    """Up to `limit` events past the one with id `after` (from the start when None), oldest
    or newest first, only those about `user_id` or of `kind` when given; and whether more
    follow."""
    # From the start: past the largest bigint, or below the smallest id.
    start = after if after is not None else (2**63 - 1 if newest_first else 0)
    query = _NEWEST if newest_first else _OLDEST
    rows = await db.fetch(query, start, user_id, kind, limit + 1)
    return rows[:limit], len(rows) > limit


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
