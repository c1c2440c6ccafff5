"""All SQL for webhooks: the endpoints, and the deliveries of the events queued for them
(events.queue writes those with each change)."""

from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg

from ..database import Connection, Database
from .events import rfc3339

# Never the secrets. The queries below are built from this module's constants only.
_COLUMNS = "id, url, events, description, enabled, disabled_reason, created_at"
_CREATE = (
    "INSERT INTO webhooks (url, events, description, secret, created_by) "  # noqa: S608
    f"VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}"
)
_GET = f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1"  # noqa: S608
_PAGE = f"SELECT {_COLUMNS} FROM webhooks WHERE id > $1 ORDER BY id LIMIT $2"  # noqa: S608


async def create(
    db: Database | Connection,
    *,
    url: str,
    events: list[str],
    description: str,
    secret: bytes,
    created_by: str,
) -> asyncpg.Record:
    row = await db.fetchrow(
        _CREATE,
        url,
        events,
        description,
        secret,
        created_by,
    )
    return cast(asyncpg.Record, row)  # INSERT ... RETURNING always yields the row


async def get(db: Database | Connection, webhook_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(_GET, webhook_id)


async def page(db: Database, *, after: int | None, limit: int) -> tuple[list[asyncpg.Record], bool]:
    """Up to `limit` endpoints past the id `after`, by id; and whether more follow."""
    rows = await db.fetch(_PAGE, after or 0, limit + 1)
    return rows[:limit], len(rows) > limit


async def update(
    connection: Connection, webhook_id: int, changes: dict[str, Any]
) -> asyncpg.Record | None:
    """Set the given columns (url, events, description, enabled); enabling clears why it
    was disabled."""
    names = list(changes)
    sets = [f"{name} = ${n}" for n, name in enumerate(names, start=2)]
    if changes.get("enabled"):
        sets.append("disabled_reason = NULL")
    # The column names are the schema's, never the caller's (the router's model fixes them).
    return await connection.fetchrow(
        f"UPDATE webhooks SET {', '.join(sets)} WHERE id = $1 RETURNING {_COLUMNS}",  # noqa: S608
        webhook_id,
        *changes.values(),
    )


async def delete(connection: Connection, webhook_id: int) -> bool:
    """Delete the endpoint and its pending deliveries: nothing is sent to it after this."""
    deleted = await connection.fetchval(
        "DELETE FROM webhooks WHERE id = $1 RETURNING id", webhook_id
    )
    return deleted is not None


async def rotate(
    connection: Connection, webhook_id: int, secret: bytes, overlap: timedelta
) -> bool:
    """A new secret; the current one keeps signing too for `overlap`."""
    rotated = await connection.fetchval(
        "UPDATE webhooks SET previous_secret = secret, secret = $2, "
        "previous_secret_until = now() + $3 WHERE id = $1 RETURNING id",
        webhook_id,
        secret,
        overlap,
    )
    return rotated is not None


async def deliveries(
    db: Database, webhook_id: int, *, before: int | None, limit: int
) -> tuple[list[asyncpg.Record], dict[int, list[asyncpg.Record]], bool]:
    """Up to `limit` of the endpoint's deliveries below the id `before`, newest first, each
    delivery's attempts (oldest first), and whether more follow."""
    rows = await db.fetch(
        "SELECT d.id, d.event_id, e.type, e.created_at, d.state, d.next_attempt_at "
        "FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id "
        "WHERE d.webhook_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3",
        webhook_id,
        before or 2**63 - 1,
        limit + 1,
    )
    attempts: dict[int, list[asyncpg.Record]] = {row["id"]: [] for row in rows[:limit]}
    for attempt in await db.fetch(
        "SELECT delivery_id, at, status, error, duration_ms FROM webhook_attempts "
        "WHERE delivery_id = ANY($1::bigint[]) ORDER BY id",
        list(attempts),
    ):
        attempts[attempt["delivery_id"]].append(attempt)
    return rows[:limit], attempts, len(rows) > limit


async def retry(connection: Connection, webhook_id: int, event_id: str) -> bool:
    """Try the event again now, whatever became of it."""
    retried = await connection.fetchval(
        "UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now() "
        "WHERE webhook_id = $1 AND event_id = $2 RETURNING id",
        webhook_id,
        event_id,
    )
    return retried is not None


# Each waiting event becomes a delivery for every enabled endpoint subscribed to its type,
# numbered in the order of the changes (one user's events reach an endpoint in that order);
# one worker at a time, under the lock, or two could number them crosswise.
FAN_OUT_LOCK = 0x77686B  # an advisory lock's key: "whk"
FAN_OUT_BATCH = 1000
_CREATED = rfc3339("(e.payload->>'created_at')::timestamptz")
_FAN_OUT = (  # built from constants only
    "WITH waiting AS (SELECT id, seq, type, subject_user_id FROM webhook_events "  # noqa: S608
    f"WHERE NOT fanned_out ORDER BY seq LIMIT {FAN_OUT_BATCH}), "
    "fanned AS (INSERT INTO webhook_deliveries (webhook_id, event_id, subject_user_id) "
    "SELECT w.id, e.id, e.subject_user_id FROM waiting e "
    "JOIN webhooks w ON w.enabled AND e.type = ANY(w.events) ORDER BY e.seq, w.id) "
    # The body sent, in the API's form: timestamps as pydantic writes them.
    "UPDATE webhook_events e SET fanned_out = true, payload = jsonb_build_object("
    f"'type', e.type, 'timestamp', {rfc3339('e.created_at')}, 'data', "
    "CASE WHEN e.payload ? 'created_at' THEN e.payload || jsonb_build_object('created_at', "
    f"{_CREATED}) ELSE e.payload END) "
    "FROM waiting WHERE e.id = waiting.id"
)


async def fan_out(db: Database) -> int:
    """Queue the deliveries of up to FAN_OUT_BATCH waiting events; how many events (0 when
    another worker is at it)."""
    async with db.transaction() as connection:
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", FAN_OUT_LOCK):
            return 0
        status = await connection.execute(_FAN_OUT)
    return int(status.split()[-1])


# Due, not being attempted by another worker (locked rows are skipped: that is what keeps
# one attempt from being made twice), not tried in this pass already (so a pass ends), and
# the oldest pending of its user at its endpoint: one user's events arrive in order.
_CLAIM = (
    "SELECT d.id, d.webhook_id, d.event_id, d.attempts, d.created_at, e.payload::text AS body, "
    "w.url, w.secret, CASE WHEN w.previous_secret_until > now() THEN w.previous_secret END "
    "AS previous_secret FROM webhook_deliveries d "
    "JOIN webhooks w ON w.id = d.webhook_id JOIN webhook_events e ON e.id = d.event_id "
    "WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND w.enabled "
    "AND d.id <> ALL($1::bigint[]) AND NOT EXISTS (SELECT FROM webhook_deliveries p "
    "WHERE p.webhook_id = d.webhook_id AND p.subject_user_id = d.subject_user_id "
    "AND p.state = 'pending' AND p.id < d.id) "
    "ORDER BY d.next_attempt_at, d.id LIMIT 1 FOR UPDATE OF d SKIP LOCKED"
)


async def claim(connection: Connection, tried: list[int]) -> asyncpg.Record | None:
    """A due delivery, locked until the caller's transaction ends; None when none is."""
    return await connection.fetchrow(_CLAIM, tried)


async def attempted(
    connection: Connection,
    delivery_id: int,
    *,
    status: int | None,
    error: str | None,
    duration_ms: int,
    state: str,
    next_attempt_at: datetime | None,
) -> None:
    """Record an attempt and what it leaves: delivered, failed, or pending until then."""
    await connection.execute(
        "WITH attempt AS (INSERT INTO webhook_attempts (delivery_id, at, status, error, "
        "duration_ms) VALUES ($1, clock_timestamp(), $2, $3, $4)) "
        "UPDATE webhook_deliveries SET attempts = attempts + 1, state = $5, "
        "last_attempt_at = clock_timestamp(), last_status = $2, last_error = $3, "
        "next_attempt_at = coalesce($6, next_attempt_at) WHERE id = $1",
        delivery_id,
        status,
        error,
        duration_ms,
        state,
        next_attempt_at,
    )


async def disable(connection: Connection, webhook_id: int, reason: str) -> None:
    await connection.execute(
        "UPDATE webhooks SET enabled = false, disabled_reason = $2 WHERE id = $1",
        webhook_id,
        reason,
    )


async def queue_stats(db: Database) -> tuple[int, float]:
    """How many deliveries are pending, and the oldest one's age in seconds (0 if none)."""
    row = await db.fetchrow(
        "SELECT count(*) AS depth, coalesce(extract(epoch FROM now() - min(created_at)), 0) "
        "AS age FROM webhook_deliveries WHERE state = 'pending'"
    )
    row = cast(asyncpg.Record, row)  # an aggregate always yields its row
    return row["depth"], float(row["age"])


async def recent_deliveries(db: Database, limit: int) -> list[asyncpg.Record]:
    """The newest deliveries to any endpoint, for the console."""
    return await db.fetch(
        "SELECT d.webhook_id, w.url, d.event_id, e.type, e.created_at, d.state, d.attempts, "
        "d.last_status, d.last_error, d.next_attempt_at FROM webhook_deliveries d "
        "JOIN webhooks w ON w.id = d.webhook_id JOIN webhook_events e ON e.id = d.event_id "
        "ORDER BY d.id DESC LIMIT $1",
        limit,
    )
