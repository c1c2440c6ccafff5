"""Request guards shared by every feature: body size and content type."""

from http import HTTPStatus
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic_core import to_json
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import problem


class BodySizeLimit:
    """Answer 413 to a request body over `max_bytes`, declared or streamed, before it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        if declared is not None and over_limit(declared, self.max_bytes):
            await problem(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._detail)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # FastAPI passes an HTTPException raised while reading the body through as is.
                raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._detail)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def _detail(self) -> str:
        return f"The request body is larger than {self.max_bytes} bytes."


def over_limit(declared: bytes, max_bytes: int) -> bool:
    """Whether a Content-Length is not a length, or one over `max_bytes`."""
    return not declared.isdigit() or int(declared) > max_bytes


def client_address(request: Request) -> str | None:
    """The client's address: the peer's, or the one a trusted proxy forwarded (the server
    resolves X-Forwarded-For from APP_FORWARDED_ALLOW_IPS)."""
    return request.client.host if request.client else None


def is_json(content_type: str | None) -> bool:
    """Whether a body of this Content-Type is JSON (one without is parsed as JSON, as
    FastAPI does)."""
    if content_type is None:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type")
    if not is_json(content_type):
        media_type = (content_type or "").partition(";")[0].strip().lower()
        raise HTTPException(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type must be application/json, not {media_type or 'empty'}.",
        )


JSON_BODY = Depends(_require_json)


# On every response: browsers must not sniff content types, and nothing may be cached (every
# answer is user data or live state).
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"cache-control", b"no-store"))


# Pages (the console, the account pages, the API docs) load nothing from elsewhere and are
# never framed; forms post only here.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class Json(JSONResponse):
    """A route's answer, already in the shape of its declared `response_model`, encoded once
    by pydantic-core. Returned as a value, FastAPI would validate it against that model again,
    then serialize it: about 6 % of a GET's time in our code (measured)."""

    def render(self, content: Any) -> bytes:
        return to_json(content)


class HeadAsGet(BaseRoute):
    """HEAD wherever GET is (RFC 9110 §9.3.2): the same status and headers, no body. FastAPI's
    routes take GET alone, so this goes last, where only a HEAD no route took arrives; it
    hands it to the route that takes the path's GET (the hot path's included)."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.routes = routes

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            get = {**scope, "method": "GET"}
            for route in self.routes:
                found, child = route.matches(get) if route is not self else (Match.NONE, {})
                if found is Match.FULL:
                    return Match.FULL, {**child, "head_as": route}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await scope["head_as"].handle({**scope, "method": "GET"}, receive, without_body)
