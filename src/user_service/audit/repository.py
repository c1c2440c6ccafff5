"""All SQL for the audit log, and who-did-it as each event records it."""

import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import Request

from .. import logs
from ..database import Connection, Database


@dataclass(frozen=True, slots=True)
class Context:
    """Who acts, from where, in which request."""

    actor: str
    client_address: str | None
    request_id: str | None


def context(request: Request, actor: str | None = None) -> Context:
    """The request's context; the actor is the authenticated caller unless named."""
    if actor is None:
        principal = getattr(request.state, "principal", None)
        actor = principal.name if principal is not None else "anonymous"
    address = request.client.host if request.client else None
    return Context(actor, address, logs.request_id.get())


async def record(
    db: Database | Connection,
    context: Context,
    kind: str,
    subject_user_id: int | None,
    **details: Any,
) -> None:
    """Append an event. `details` must never hold a password or a token."""
    await db.fetchval(
        "INSERT INTO audit_events (kind, actor, subject_user_id, client_address, request_id, "
        "details) VALUES ($1, $2, $3, $4, $5, $6)",
        kind,
        context.actor,
        subject_user_id,
        context.client_address,
        context.request_id,
        json.dumps(details),
    )


async def list_after(
    db: Database, *, after: int, limit: int, user_id: int | None, kind: str | None
) -> tuple[list[asyncpg.Record], bool]:
    """Up to `limit` events with ids above `after`, oldest first; and whether more follow."""
    rows = await db.fetch(
        "SELECT id, at, kind, actor, subject_user_id, client_address, request_id, details "
        "FROM audit_events WHERE id > $1 AND ($2::bigint IS NULL OR subject_user_id = $2) "
        "AND ($3::text IS NULL OR kind = $3) ORDER BY id LIMIT $4",
        after,
        user_id,
        kind,
        limit + 1,
    )
    return rows[:limit], len(rows) > limit
