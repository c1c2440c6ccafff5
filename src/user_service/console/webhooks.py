"""The console's Webhooks page: the endpoints other services subscribed, the latest
deliveries with their state, and a retry. Each form is one call on the accounts service, as
the /webhooks API's routes are."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from ..accounts.service import of
from ..context import from_request
from ..errors import InvalidInputError
from ..schemas import MAX_ID
from ..webhooks.events import TYPES
from . import web

router = APIRouter(prefix="/console/webhooks", route_class=web.PageRoute, include_in_schema=False)

MANAGE = "webhooks:write"
WebhookId = Annotated[int, Path(ge=1, le=MAX_ID)]
EventId = Annotated[str, Path(max_length=100)]
DONE = {
    "deleted": "The webhook is deleted: nothing more is sent to it.",
    "retried": "The event is sent again now.",
}


async def _page(request: Request, error: str = "", **context: Any) -> Response:
    service = of(request)
    endpoints, _ = await service.webhooks_page(after=None, limit=100)
    return web.render(
        request,
        "console/webhooks.html",
        422 if error else 200,
        webhooks=endpoints,
        deliveries=await service.recent_deliveries(),
        types=TYPES,
        error=error,
        **context,
    )


@router.get("")
async def webhooks(request: Request, done: str = "") -> Response:
    await web.operator(request, MANAGE)
    return await _page(request, notice=DONE.get(done, ""))


@router.post("")
async def subscribe(request: Request) -> Response:
    await web.operator(request, MANAGE)
    data = await web.form(request)
    url = str(data.get("url", "")).strip()
    events = [str(e) for e in data.getlist("events") if str(e) in TYPES]
    description = str(data.get("description", "")).strip()[:500]
    if not url or not events:
        return await _page(request, "Give a URL and at least one event.", form=data)
    try:
        webhook = await of(request).create_webhook(
            from_request(request), url=url, events=events, description=description
        )
    except InvalidInputError as exc:
        return await _page(request, str(exc.errors[0]["msg"]), form=data)
    # Shown this once (every answer is Cache-Control: no-store), kept encrypted.
    return web.render(request, "console/webhook-created.html", 201, webhook=webhook)


@router.post("/{webhook_id}/delete")
async def delete(request: Request, webhook_id: WebhookId) -> Response:
    await web.operator(request, MANAGE)
    await web.form(request)
    await of(request).delete_webhook(from_request(request), webhook_id)
    return web.redirect(request, "/console/webhooks?done=deleted")


@router.post("/{webhook_id}/deliveries/{event_id}/retry")
async def retry(request: Request, webhook_id: WebhookId, event_id: EventId) -> Response:
    await web.operator(request, MANAGE)
    await web.form(request)
    await of(request).retry_delivery(from_request(request), webhook_id, event_id)
    return web.redirect(request, "/console/webhooks?done=retried")
