from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from .. import errors
from ..accounts.service import of
from ..auth.guard import require
from ..context import from_request
from ..http import JSON_BODY, Json
from ..schemas import MAX_ID
from .pagination import cursor_after, cursor_position
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

UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.", examples=[1])]

READ = require("users:read", "Read and list users.")
WRITE = require("users:write", "Add, rename and delete users.")

router = APIRouter(prefix="/users", tags=["users"], responses=errors.responses(401, 403, 429))


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
async def create_user(body: UserCreate, request: Request) -> Json:
    """Add a user; `name` becomes its nickname."""
    user = await of(request).create_user(from_request(request), name=body.name)
    return Json(user, status_code=201, headers={"Location": f"{router.prefix}/{user['id']}"})


@router.get("", dependencies=[READ], response_model=UserPage, responses=errors.responses(422, 503))
async def list_users(
    request: Request,
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
    users, more = await of(request).users_page(sort=sort, after=position, search=q, limit=limit)
    return Json(UserPage(items=users, next_cursor=cursor_after(sort, users[-1]) if more else None))


@router.get(
    "/{user_id}",
    dependencies=[READ],
    response_model=UserView,
    responses=errors.responses(404, 422, 503),
)
async def get_user(user_id: UserId, request: Request) -> Json:
    """Read one user."""
    return Json(await of(request).user_view(user_id))


@router.patch(
    "/{user_id}",
    dependencies=[WRITE, JSON_BODY],
    response_model=UserRead,
    responses=errors.responses(400, 404, 413, 415, 422, 503),
)
async def update_user(user_id: UserId, body: UserUpdate, request: Request) -> Json:
    """Rename a user."""
    return Json(await of(request).rename_user(from_request(request), user_id, body.name))


@router.delete(
    "/{user_id}",
    dependencies=[WRITE],
    response_model=UserDeleted,
    responses=errors.responses(404, 422, 503),
)
async def delete_user(user_id: UserId, request: Request) -> Json:
    """Delete a user."""
    await of(request).delete_user(from_request(request), user_id)
    return Json(UserDeleted(id=user_id))
