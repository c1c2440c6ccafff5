import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.exceptions import RequestValidationError

from .. import errors
from ..audit.repository import context
from ..auth.guard import require
from ..database import Db
from ..http import JSON_BODY, Json
from . import repository
from .schemas import (
    Search,
    Sort,
    UserCreate,
    UserDeleted,
    UserPage,
    UserRead,
    UserUpdate,
    UserView,
)

MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.", examples=[1])]

READ = require("users:read", "Read and list users.")
WRITE = require("users:write", "Add, rename and delete users.")

router = APIRouter(prefix="/users", tags=["users"], responses=errors.responses(401, 403, 429))


def _not_found(user_id: int) -> errors.NotFoundError:
    return errors.NotFoundError(f"User {user_id} does not exist.")


CREATED: dict[str, Any] = {
    "description": "Created",
    "headers": {"Location": {"description": "The new user's URL.", "schema": {"type": "string"}}},
}


@router.post(
    "",
    status_code=201,
    dependencies=[WRITE, JSON_BODY],
    response_model=UserRead,
    responses={201: CREATED, **errors.responses(400, 413, 415, 422, 503)},
)
async def create_user(body: UserCreate, request: Request, db: Db) -> Json:
    """Add a user; `name` becomes its nickname."""
    user = await repository.create(db, context(request), nickname=body.name)
    return Json(user, status_code=201, headers={"Location": f"{router.prefix}/{user['id']}"})


# A created-time cursor: "<microseconds since 1970>_<id>", exact and safe in a URL as is.
_CREATED_CURSOR = re.compile(r"(-?[0-9]{1,19})_([0-9]{1,19})")
_ID_CURSOR = re.compile(r"[0-9]{1,19}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def cursor_after(sort: Sort, last: UserView) -> int | str:
    # By time, the position is (created_at, id), written out whole rather than as the id
    # alone: the next page must not depend on that user still existing.
    if sort.endswith("created"):
        return f"{(last['created_at'] - _EPOCH) // _MICROSECOND}_{last['id']}"
    return last["id"]


def cursor_position(sort: Sort, after: str) -> repository.Cursor:
    """The position a `cursor_after` of `sort` names; 422 if `after` is not one."""
    if sort.endswith("created"):
        created = _CREATED_CURSOR.fullmatch(after)
        if created and int(created[2]) <= MAX_ID:
            with contextlib.suppress(OverflowError):  # a time past year 9999: no user's
                return _EPOCH + int(created[1]) * _MICROSECOND, int(created[2])
    elif _ID_CURSOR.fullmatch(after) and int(after) <= MAX_ID:
        return int(after)
    error = {
        "loc": ("query", "after"),
        "msg": f"Not a cursor of sort={sort}",
        "type": "value_error",
    }
    raise RequestValidationError([error])


@router.get("", dependencies=[READ], response_model=UserPage, responses=errors.responses(422, 503))
async def list_users(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    after: Annotated[
        str | None,
        Query(
            max_length=40,
            description="The previous page's `next_cursor`: a user id when sorted by id (the "
            "page starts above it, or below it for `-id`), else an opaque string. Omit it for "
            "the first page.",
            examples=["42"],
        ),
    ] = None,
    q: Annotated[
        Search | None,
        Query(
            description="Only users whose nickname or email contains this, ignoring case; "
            "`%`, `_` and `\\` are plain characters.",
            examples=["alice"],
        ),
    ] = None,
    sort: Annotated[
        Sort,
        Query(description="By id or by creation time (ties by id); `-` for newest first."),
    ] = "id",
) -> Json:
    """List users, by ascending id unless `sort` says otherwise, optionally matching `q`;
    pass `next_cursor` as `after` for the next page."""
    position = None if after is None else cursor_position(sort, after)
    users, more = await repository.list_after(db, sort=sort, after=position, search=q, limit=limit)
    return Json(UserPage(items=users, next_cursor=cursor_after(sort, users[-1]) if more else None))


@router.get(
    "/{user_id}",
    dependencies=[READ],
    response_model=UserView,
    responses=errors.responses(404, 422, 503),
)
async def get_user(user_id: UserId, db: Db) -> Json:
    """Read one user."""
    user = await repository.get(db, user_id=user_id)
    if user is None:
        raise _not_found(user_id)
    return Json(user)


@router.patch(
    "/{user_id}",
    dependencies=[WRITE, JSON_BODY],
    response_model=UserRead,
    responses=errors.responses(400, 404, 413, 415, 422, 503),
)
async def update_user(user_id: UserId, body: UserUpdate, request: Request, db: Db) -> Json:
    """Rename a user."""
    user = await repository.rename(db, context(request), user_id=user_id, nickname=body.name)
    if user is None:
        raise _not_found(user_id)
    return Json(user)


@router.delete(
    "/{user_id}",
    dependencies=[WRITE],
    response_model=UserDeleted,
    responses=errors.responses(404, 422, 503),
)
async def delete_user(user_id: UserId, request: Request, db: Db) -> Json:
    """Delete a user."""
    if not await repository.delete(db, context(request), user_id=user_id):
        raise _not_found(user_id)
    return Json(UserDeleted(id=user_id))
