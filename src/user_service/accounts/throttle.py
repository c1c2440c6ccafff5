"""Throttles shared by every worker and instance, so kept in PostgreSQL."""

from typing import cast

import asyncpg

from ..database import Connection, Database

# Failed sign-ins to one email address before each further try has to wait, and how long
# the wait may grow (doubling from 2 s).
FREE_FAILURES = 5
MAX_WAIT_SECONDS = 15 * 60

Runner = Database | Connection


async def hit(db: Runner, key: str, limit: int, window_seconds: int = 60) -> int | None:
    """Count one request under `key`; the seconds to wait when it is over `limit` in the
    current window, else None."""
    row = await db.fetchrow(
        """
        INSERT INTO throttles AS t (key, count) VALUES ($1, 1)
        ON CONFLICT (key) DO UPDATE SET
            count = CASE WHEN t.window_start > now() - make_interval(secs => $2)
                         THEN t.count + 1 ELSE 1 END,
            window_start = CASE WHEN t.window_start > now() - make_interval(secs => $2)
                                THEN t.window_start ELSE now() END
        RETURNING count,
            ceil(extract(epoch FROM window_start + make_interval(secs => $2) - now()))::int
                AS retry_after
        """,
        key,
        window_seconds,
    )
    row = cast(asyncpg.Record, row)  # an upsert always returns its row
    return max(row["retry_after"], 1) if row["count"] > limit else None


async def blocked_for(db: Runner, key: str) -> int | None:
    """Seconds until `key` may try again after repeated failures, or None."""
    seconds: int | None = await db.fetchval(
        "SELECT ceil(extract(epoch FROM blocked_until - now()))::int FROM throttles "
        "WHERE key = $1 AND blocked_until > now()",
        key,
    )
    return seconds


async def fail(db: Runner, key: str) -> None:
    """Count a consecutive failure: past FREE_FAILURES, the next try waits 2, 4, 8 … s."""
    await db.fetchval(
        """
        INSERT INTO throttles AS t (key, count) VALUES ($1, 1)
        ON CONFLICT (key) DO UPDATE SET count = t.count + 1, window_start = now(),
            blocked_until = CASE WHEN t.count + 1 >= $2 THEN now() + make_interval(
                secs => least($3, 2 ^ (t.count + 2 - $2))) END
        """,
        key,
        FREE_FAILURES,
        MAX_WAIT_SECONDS,
    )


async def clear(db: Runner, key: str) -> None:
    await db.fetchval("DELETE FROM throttles WHERE key = $1", key)
