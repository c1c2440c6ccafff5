"""Keyset cursors of a list of users: where the next page starts, written into `next_cursor`
and read back from `after` (the API's and the console's lists alike)."""

import contextlib
import re
from datetime import UTC, datetime, timedelta

from ..errors import InvalidInputError
from ..schemas import MAX_ID
from .repository import Cursor
from .schemas import Sort, UserView

# A created-time cursor: "<microseconds since 1970>_<id>", exact and safe in a URL as is.
_CREATED_CURSOR = re.compile(r"(-?[0-9]{1,19})_([0-9]{1,19})")
_ID_CURSOR = re.compile(r"[0-9]{1,19}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cursor_after(sort: Sort, last: UserView) -> int | str:
    """The cursor of the page that follows `last` in `sort` order."""
    # By time, the position is (created_at, id), written out whole rather than as the id
    # alone: the next page must not depend on that user still existing.
    if sort.endswith("created"):
        return f"{(last['created_at'] - _EPOCH) // _MICROSECOND}_{last['id']}"
    return last["id"]


def cursor_position(sort: Sort, after: str) -> Cursor:
    """The position a `cursor_after` of `sort` names; 422 if `after` is not one."""
    if sort.endswith("created"):
        created = _CREATED_CURSOR.fullmatch(after)
        if created and int(created[2]) <= MAX_ID:
            with contextlib.suppress(OverflowError):  # a time past year 9999: no user's
                return _EPOCH + int(created[1]) * _MICROSECOND, int(created[2])
    elif _ID_CURSOR.fullmatch(after) and int(after) <= MAX_ID:
        return int(after)
    raise InvalidInputError(("query", "after"), f"Not a cursor of sort={sort}")
