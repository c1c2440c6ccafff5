"""All SQL for users, in one place."""

from typing import cast

import asyncpg

from ..database import Database
from .schemas import UserRead


def _user(row: asyncpg.Record) -> UserRead:
    return UserRead(id=row["id"], nickname=row["nickname"])


async def get(db: Database, *, user_id: int) -> UserRead | None:
    """The user with this id, if any."""
    row = await db.fetchrow("SELECT id, nickname FROM users WHERE id = $1", user_id)
    return _user(row) if row else None


async def create(db: Database, *, nickname: str) -> UserRead:
    """Insert a user and return it with its new id."""
    row = await db.fetchrow(
        "INSERT INTO users (nickname) VALUES ($1) RETURNING id, nickname", nickname
    )
    return _user(cast(asyncpg.Record, row))  # INSERT ... RETURNING always yields the row


async def rename(db: Database, *, user_id: int, nickname: str) -> UserRead | None:
    """Set a user's nickname; None when there is no such user."""
    row = await db.fetchrow(
        "UPDATE users SET nickname = $2 WHERE id = $1 RETURNING id, nickname", user_id, nickname
    )
    return _user(row) if row else None


async def delete(db: Database, *, user_id: int) -> bool:
    """Delete a user; False when there was none (so of concurrent deletes, one wins)."""
    deleted = await db.fetchval("DELETE FROM users WHERE id = $1 RETURNING id", user_id)
    return deleted is not None


async def list_after(db: Database, *, after: int, limit: int) -> tuple[list[UserRead], bool]:
    """Up to `limit` users with ids above `after`, by id; and whether more follow."""
    rows = await db.fetch(
        "SELECT id, nickname FROM users WHERE id > $1 ORDER BY id LIMIT $2", after, limit + 1
    )
    return [_user(row) for row in rows[:limit]], len(rows) > limit
