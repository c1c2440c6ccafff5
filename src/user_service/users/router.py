from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from .. import errors
from ..audit.repository import context
from ..auth.guard import require
from ..database import Db
from ..http import JSON_BODY, Json
from . import repository
from .schemas import UserCreate, UserDeleted, UserPage, UserRead, UserUpdate, UserView

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


@router.get("", dependencies=[READ], response_model=UserPage, responses=errors.responses(422, 503))
async def list_users(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Return users with ids above this cursor.")
    ] = 0,
) -> Json:
    """List users by ascending id; pass `next_cursor` as `after` for the next page."""
    users, more = await repository.list_after(db, after=after, limit=limit)
    return Json(UserPage(items=users, next_cursor=users[-1]["id"] if more else None))


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
