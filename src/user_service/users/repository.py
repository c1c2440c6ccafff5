"""All SQL for users, in one place. Every change is recorded in the audit log by the same
statement: one round trip, and no change without its record."""

import re
from datetime import datetime
from functools import cache
from typing import cast

import asyncpg

from ..audit.kinds import Kind
from ..context import Context
from ..database import Database
from ..webhooks.events import ACCOUNT, NO_ACCOUNT, queue
from .schemas import Sort, UserRead, UserView

# Where a page starts: after this id when sorted by id, else after this (created_at, id).
Cursor = int | tuple[datetime, int]


def _user(row: asyncpg.Record) -> UserRead:
    return UserRead(id=row["id"], nickname=row["nickname"])


def _view(row: asyncpg.Record) -> UserView:
    return UserView(
        id=row["id"],
        nickname=row["nickname"],
        email=row["email"],
        email_verified=row["email_verified"],
        created_at=row["created_at"],
    )


_COLUMNS = (
    "SELECT u.id, u.nickname, a.email, a.email_verified_at IS NOT NULL AS email_verified, "
    "u.created_at "
)
_VIEW = _COLUMNS + "FROM users u LEFT JOIN accounts a ON a.user_id = u.id "

# Users whose nickname or email matches the ILIKE pattern $1. A UNION, because each side
# can then use its own trigram index, where `nickname ILIKE $1 OR email ILIKE $1` across
# the join could use neither. `email::text`: citext's own ILIKE is not in gin_trgm_ops.
_MATCHING = (
    "u.id IN (SELECT id FROM users WHERE nickname ILIKE $1 "
    "UNION SELECT user_id FROM accounts WHERE email::text ILIKE $1)"
)


def _audited(change: str, kind: Kind, hook: str, *, joined: bool = True) -> str:
    """`change` (a statement returning id, nickname and created_at, its parameters from $4
    on) with its audit event and its webhooks' `hook` event; $1-$3 are the actor, the
    client's address and the request id. `joined`: whether the user may have an account."""
    # Built from this module's constants only, once, at import.
    return (
        f"WITH changed AS ({change}), event AS (INSERT INTO audit_events "  # noqa: S608
        "(kind, actor, subject_user_id, client_address, request_id) "
        f"SELECT '{kind}', $1, id, $2, $3 FROM changed), "
        + queue(
            f"'{hook}'",
            "changed u" + (" LEFT JOIN accounts a ON a.user_id = u.id" if joined else ""),
            "u.id",
            f"to_jsonb(u) || {ACCOUNT if joined else NO_ACCOUNT}",
            listed=f"ARRAY['{hook}']",
        )
        + " SELECT id, nickname FROM changed"
    )


_RETURNING = "RETURNING id, nickname, created_at"
# A new user has no account yet: no join (a join costs every insert, whether or not an
# endpoint listens).
_CREATE = _audited(
    f"INSERT INTO users (nickname) VALUES ($4) {_RETURNING}",  # noqa: S608 (constants)
    "user.created",
    "user.created",
    joined=False,
)
# $4 is who may be changed: a user without an account, or one whose account's scopes are
# all among these (NULL: anyone). Checked by the statement that changes it, so a scope
# granted meanwhile is seen.
_WITHIN = (
    "($4::text[] IS NULL OR NOT EXISTS (SELECT FROM accounts a "
    "WHERE a.user_id = $5 AND NOT a.scopes <@ $4::text[]))"
)
_RENAME = _audited(
    f"UPDATE users SET nickname = $6 WHERE id = $5 AND {_WITHIN} {_RETURNING}",  # noqa: S608
    "user.renamed",
    "user.updated",
)
# The user's account, gone with it, is still seen by the rest of the statement (its
# snapshot): the event shows the user as it was.
_DELETE = _audited(
    f"DELETE FROM users WHERE id = $5 AND {_WITHIN} {_RETURNING}",  # noqa: S608
    "user.deleted",
    "user.deleted",
)


async def get(db: Database, *, user_id: int) -> UserView | None:
    """The user with this id, if any."""
    row = await db.fetchrow(_VIEW + "WHERE u.id = $1", user_id)
    return _view(row) if row else None


async def create(db: Database, context: Context, *, nickname: str) -> UserRead:
    """Insert a user and return it with its new id."""
    row = await db.fetchrow(_CREATE, *_by(context), nickname)
    return _user(cast(asyncpg.Record, row))  # INSERT ... RETURNING always yields the row


async def rename(
    db: Database, context: Context, *, user_id: int, nickname: str, within: list[str] | None
) -> UserRead | None:
    """Set a user's nickname, if it has no account or one whose scopes are all `within`
    (None: whatever it holds); None when there is no such user to change."""
    row = await db.fetchrow(_RENAME, *_by(context), within, user_id, nickname)
    return _user(row) if row else None


async def delete(db: Database, context: Context, *, user_id: int, within: list[str] | None) -> bool:
    """Delete a user, as `rename` would change it; False when there was none to delete (so
    of concurrent deletes, one wins)."""
    deleted = await db.fetchrow(_DELETE, *_by(context), within, user_id)
    return deleted is not None


@cache
def page_query(sort: Sort, *, search: bool, after: bool, rows: int) -> str:
    """The SELECT of up to `rows` users in `sort` order. Its parameters: the search pattern
    (if `search`), the cursor's fields (if `after`), then, with a search, `rows`."""
    # A separate statement per case, not `$2 IS NULL OR …`: each gets a plan that seeks its
    # index to the cursor rather than scanning up to it.
    key = ("u.created_at", "u.id") if sort.endswith("created") else ("u.id",)
    descending = sort.startswith("-")
    conditions = [_MATCHING] if search else []
    last = len(conditions)  # the parameters used so far
    if after:
        fields = ", ".join(f"${last + n}" for n in range(1, len(key) + 1))
        conditions.append(f"({', '.join(key)}) {'<' if descending else '>'} ({fields})")
        last += len(key)
    where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
    order = ", ".join(f"{column} DESC" if descending else column for column in key)
    # The page first, then its accounts: joined before the LIMIT, PostgreSQL may merge-join
    # every account up to the cursor (seen: 50 ms for a page at id 900,000 of 1M users).
    # Without a search, `rows` is written into the statement: given `LIMIT $n`, PostgreSQL's
    # generic plan guesses a tenth of the table, so it would plan every execution anew
    # (measured: a page took 206 µs, 156 µs with the number). A search is planned for each
    # pattern, as the best plan depends on it.
    limit = f"${last + 1}" if search else str(rows)
    # Built from this module's constants and an int only.
    page = (
        f"SELECT id, nickname, created_at FROM users u {where}"  # noqa: S608
        f"ORDER BY {order} LIMIT {limit}"
    )
    return f"{_COLUMNS}FROM ({page}) u LEFT JOIN accounts a ON a.user_id = u.id ORDER BY {order}"


def containing(text: str) -> str:
    """An ILIKE pattern matching `text` anywhere, its `%`, `_` and `\\` taken literally."""
    return "%" + re.sub(r"([%_\\])", r"\\\1", text) + "%"


async def list_after(
    db: Database, *, sort: Sort, after: Cursor | None, search: str | None, limit: int
) -> tuple[list[UserView], bool]:
    """Up to `limit` users past `after` in `sort` order, only those whose nickname or email
    contains `search` (case-insensitively) if given; and whether more follow."""
    query = page_query(sort, search=search is not None, after=after is not None, rows=limit + 1)
    pattern = () if search is None else (containing(search),)
    cursor = () if after is None else after if isinstance(after, tuple) else (after,)
    rows = await db.fetch(query, *pattern, *cursor, *() if search is None else (limit + 1,))
    return [_view(row) for row in rows[:limit]], len(rows) > limit


def _by(context: Context) -> tuple[str, str | None, str | None]:
    return context.actor, context.client_address, context.request_id
