"""The webhooks API: endpoints that other services subscribe to events, their secrets and
their deliveries. Every route needs webhooks:write; each is one call on the accounts
service."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from .. import errors
from ..accounts.service import of
from ..context import from_request
from ..http import JSON_BODY, Json
from ..schemas import MAX_ID
from . import MANAGE
from .schemas import (
    DeliveryPage,
    Retried,
    Webhook,
    WebhookCreate,
    WebhookCreated,
    WebhookPage,
    WebhookSecret,
    WebhookUpdate,
)

WebhookId = Annotated[int, Path(ge=1, le=MAX_ID, description="The webhook's id.")]
EventId = Annotated[str, Path(max_length=100, description="The event's id (webhook-id).")]
Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]

router = APIRouter(
    prefix="/webhooks",
    tags=["webhooks"],
    dependencies=[MANAGE],
    responses=errors.responses(401, 403, 422, 429, 503),
)
CREATED = ("id", "url", "events", "description", "created_at", "secret")
FIELDS = ("id", "url", "events", "description", "enabled", "disabled_reason", "created_at")


def _shown(row: object, fields: tuple[str, ...] = FIELDS) -> dict[str, object]:
    return {field: row[field] for field in fields}  # type: ignore[index]


@router.post(
    "",
    status_code=201,
    dependencies=[JSON_BODY],
    response_model=WebhookCreated,
    responses=errors.responses(400, 413, 415),
)
async def create_webhook(body: WebhookCreate, request: Request) -> Json:
    """Subscribe a URL to events. The answer holds the secret that signs them (Standard
    Webhooks), shown this once."""
    webhook = await of(request).create_webhook(
        from_request(request), url=body.url, events=body.events, description=body.description
    )
    return Json(
        _shown(webhook, CREATED),
        status_code=201,
        headers={"Location": f"{router.prefix}/{webhook['id']}"},
    )


@router.get("", response_model=WebhookPage)
async def list_webhooks(
    request: Request,
    limit: Limit = 50,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_ID, description="The previous page's `next_cursor`.")
    ] = None,
) -> Json:
    """The endpoints, by id (never their secrets)."""
    rows, more = await of(request).webhooks_page(after=after, limit=limit)
    items = [_shown(row) for row in rows]
    return Json({"items": items, "next_cursor": rows[-1]["id"] if more else None})


@router.get("/{webhook_id}", response_model=Webhook, responses=errors.responses(404))
async def get_webhook(webhook_id: WebhookId, request: Request) -> Json:
    """One endpoint."""
    return Json(_shown(await of(request).webhook(webhook_id)))


@router.patch(
    "/{webhook_id}",
    dependencies=[JSON_BODY],
    response_model=Webhook,
    responses=errors.responses(400, 404, 413, 415),
)
async def update_webhook(webhook_id: WebhookId, body: WebhookUpdate, request: Request) -> Json:
    """Change the URL, the events, the description, or whether it is enabled (enabling it
    again sends what waited meanwhile)."""
    changes = body.model_dump(exclude_none=True)
    service = of(request)
    if not changes:
        return Json(_shown(await service.webhook(webhook_id)))
    return Json(_shown(await service.update_webhook(from_request(request), webhook_id, changes)))


@router.delete("/{webhook_id}", status_code=204, responses=errors.responses(404))
async def delete_webhook(webhook_id: WebhookId, request: Request) -> Response:
    """Delete the endpoint: nothing more is sent to it, what waited included."""
    await of(request).delete_webhook(from_request(request), webhook_id)
    return Response(status_code=204)


@router.post(
    "/{webhook_id}/rotate-secret", response_model=WebhookSecret, responses=errors.responses(404)
)
async def rotate_secret(webhook_id: WebhookId, request: Request) -> Json:
    """A new secret, shown this once. For 24 hours the previous one signs too: each request
    then carries both signatures, so the receiver can switch at its own pace."""
    secret = await of(request).rotate_webhook_secret(from_request(request), webhook_id)
    return Json({"id": webhook_id, "secret": secret})


@router.get(
    "/{webhook_id}/deliveries", response_model=DeliveryPage, responses=errors.responses(404)
)
async def list_deliveries(
    webhook_id: WebhookId,
    request: Request,
    limit: Limit = 50,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="The previous page's `next_cursor`.")
    ] = None,
) -> Json:
    """The endpoint's deliveries, newest first: each event, its state, every attempt (the
    receiver's status or the error) and, while pending, when the next one is due."""
    items, more = await of(request).webhook_deliveries(webhook_id, before=before, limit=limit)
    return Json({"items": items, "next_cursor": items[-1]["id"] if more else None})


@router.post(
    "/{webhook_id}/deliveries/{event_id}/retry",
    status_code=202,
    response_model=Retried,
    responses=errors.responses(404),
)
async def retry_delivery(webhook_id: WebhookId, event_id: EventId, request: Request) -> Json:
    """Send the event again now, whatever became of it."""
    await of(request).retry_delivery(from_request(request), webhook_id, event_id)
    return Json({"event_id": event_id, "state": "pending"}, status_code=202)
