from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from .. import errors
from ..auth.guard import require
from ..database import Db
from ..http import JSON_BODY
from . import repository
from .schemas import UserCreate, UserDeleted, UserPage, UserRead, UserUpdate

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
    responses={201: CREATED, **errors.responses(400, 413, 415, 422, 503)},
)
async def create_user(body: UserCreate, db: Db, response: Response) -> UserRead:
    """Add a user; `name` becomes its nickname."""
    user = await repository.create(db, nickname=body.name)
    response.headers["Location"] = f"{router.prefix}/{user.id}"
    return user


@router.get("", dependencies=[READ], responses=errors.responses(422, 503))
async def list_users(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    after: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Return users with ids above this cursor.")
    ] = 0,
) -> UserPage:
    """List users by ascending id; pass `next_cursor` as `after` for the next page."""
    users, more = await repository.list_after(db, after=after, limit=limit)
    return UserPage(items=users, next_cursor=users[-1].id if more else None)


@router.get("/{user_id}", dependencies=[READ], responses=errors.responses(404, 422, 503))
async def get_user(user_id: UserId, db: Db) -> UserRead:
    """Read one user."""
    user = await repository.get(db, user_id=user_id)
    if user is None:
        raise _not_found(user_id)
    return user


@router.patch(
    "/{user_id}",
    dependencies=[WRITE, JSON_BODY],
    responses=errors.responses(400, 404, 413, 415, 422, 503),
)
async def update_user(user_id: UserId, body: UserUpdate, db: Db) -> UserRead:
    """Rename a user."""
    user = await repository.rename(db, user_id=user_id, nickname=body.name)
    if user is None:
        raise _not_found(user_id)
    return user


@router.delete("/{user_id}", dependencies=[WRITE], responses=errors.responses(404, 422, 503))
async def delete_user(user_id: UserId, db: Db) -> UserDeleted:
    """Delete a user."""
    if not await repository.delete(db, user_id=user_id):
        raise _not_found(user_id)
    return UserDeleted(id=user_id)
