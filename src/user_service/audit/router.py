import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from typing_extensions import TypedDict

from .. import errors
from ..accounts import service  # the module: the service imports this package's repository
from ..http import Json
from ..schemas import MAX_ID
from . import READ

router = APIRouter(prefix="/audit", tags=["audit"], responses=errors.responses(401, 403, 429))


class Event(TypedDict):
    id: int
    at: datetime
    kind: str
    actor: str
    subject_user_id: int | None
    client_address: str | None
    request_id: str | None
    details: dict[str, Any]


class EventPage(TypedDict):
    items: list[Event]
    next_cursor: int | None


@router.get("", dependencies=[READ], response_model=EventPage, responses=errors.responses(422, 503))
async def list_events(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Events with ids above this.")] = 0,
    user_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Only events about this user.")
    ] = None,
    kind: Annotated[
        str | None, Query(max_length=64, description="Only this kind, e.g. signin.failed.")
    ] = None,
) -> Json:
    """Security events, oldest first; pass `next_cursor` as `after` for the next page."""
    rows, more = await service.of(request).audit_events(
        after=after, limit=limit, user_id=user_id, kind=kind
    )
    items = [Event(**{**row, "details": json.loads(row["details"])}) for row in rows]  # type: ignore[typeddict-item]
    return Json(EventPage(items=items, next_cursor=items[-1]["id"] if more else None))
