"""All SQL for users, in one place. Every change is recorded in the audit log by the same
statement: one round trip, and no change without its record."""

from typing import cast

import asyncpg

from ..audit.repository import Context
from ..database import Database
from .schemas import UserRead, UserView


def _user(row: asyncpg.Record) -> UserRead:
    return UserRead(id=row["id"], nickname=row["nickname"])


def _view(row: asyncpg.Record) -> UserView:
    return UserView(
        id=row["id"],
        nickname=row["nickname"],
        email=row["email"],
        email_verified=row["email_verified"],
    )


_VIEW = (
    "SELECT u.id, u.nickname, a.email, a.email_verified_at IS NOT NULL AS email_verified "
    "FROM users u LEFT JOIN accounts a ON a.user_id = u.id "
)


def _audited(change: str, kind: str) -> str:
    """`change` (a statement returning id and nickname, its parameters from $4 on) with its
    audit event; $1-$3 are the actor, the client's address and the request id."""
    # Built from this module's constants only, once, at import.
    return (
        f"WITH changed AS ({change}), event AS (INSERT INTO audit_events "  # noqa: S608
        "(kind, actor, subject_user_id, client_address, request_id) "
        f"SELECT '{kind}', $1, id, $2, $3 FROM changed) SELECT id, nickname FROM changed"
    )


_CREATE = _audited(
    "INSERT INTO users (nickname) VALUES ($4) RETURNING id, nickname", "user.created"
)
_RENAME = _audited(
    "UPDATE users SET nickname = $5 WHERE id = $4 RETURNING id, nickname", "user.renamed"
)
_DELETE = _audited("DELETE FROM users WHERE id = $4 RETURNING id, nickname", "user.deleted")


async def get(db: Database, *, user_id: int) -> UserView | None:
    """The user with this id, if any."""
    row = await db.fetchrow(_VIEW + "WHERE u.id = $1", user_id)
    return _view(row) if row else None


async def create(db: Database, context: Context, *, nickname: str) -> UserRead:
    """Insert a user and return it with its new id."""
    row = await db.fetchrow(_CREATE, *_by(context), nickname)
    return _user(cast(asyncpg.Record, row))  # INSERT ... RETURNING always yields the row


async def rename(db: Database, context: Context, *, user_id: int, nickname: str) -> UserRead | None:
    """Set a user's nickname; None when there is no such user."""
    row = await db.fetchrow(_RENAME, *_by(context), user_id, nickname)
    return _user(row) if row else None


async def delete(db: Database, context: Context, *, user_id: int) -> bool:
    """Delete a user; False when there was none (so of concurrent deletes, one wins)."""
    deleted = await db.fetchrow(_DELETE, *_by(context), user_id)
    return deleted is not None


async def list_after(db: Database, *, after: int, limit: int) -> tuple[list[UserView], bool]:
    """Up to `limit` users with ids above `after`, by id; and whether more follow."""
    rows = await db.fetch(_VIEW + "WHERE u.id > $1 ORDER BY u.id LIMIT $2", after, limit + 1)
    return [_view(row) for row in rows[:limit]], len(rows) > limit


def _by(context: Context) -> tuple[str, str | None, str | None]:
    return context.actor, context.client_address, context.request_id
