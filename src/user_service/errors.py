"""One error mechanism: every error leaves as an RFC 9457 problem (application/problem+json)."""

import logging
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from .database import UNAVAILABLE
from .observability import DB_ERRORS

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 5
# What Allow may list. Not HEAD: every GET implies it (http.HeadAsGet).
_METHODS = ("DELETE", "GET", "OPTIONS", "PATCH", "POST", "PUT")


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(Problem):
    errors: list[FieldError]


class AppError(Exception):
    """Base of the errors a feature raises; carries its HTTP status."""

    status_code = HTTPStatus.INTERNAL_SERVER_ERROR
    # A stable URI per kind of error (RFC 9457 §3.1.1), so that clients can tell two 401s
    # apart; about:blank where the status says it all.
    type = "about:blank"
    message = ""  # the detail when none is given: for errors that always say the same

    def __init__(self, detail: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail or self.message)
        self.detail = detail or self.message
        self.headers = headers
        self.extra: dict[str, Any] = {}  # members of the problem body beyond RFC 9457's


class NotFoundError(AppError):
    status_code = HTTPStatus.NOT_FOUND


class InvalidInputError(AppError):
    """A field that the schema let through and a later rule refused (a weak password, a
    cursor of another sort): answered as a validation error is, naming the field."""

    status_code = HTTPStatus.UNPROCESSABLE_ENTITY

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        self.errors = [{"loc": loc, "msg": msg, "type": "value_error"}]
        super().__init__(_invalid([loc]))


def problem(
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
    type: str = "about:blank",
    **extra: Any,
) -> JSONResponse:
    """A problem-details response; `title` is the status's standard phrase."""
    body = {"type": type, "title": HTTPStatus(status).phrase, "status": status}
    return JSONResponse(
        {**body, "detail": detail, **extra},
        status_code=status,
        headers=headers,
        media_type=PROBLEM_JSON,
    )


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting these error statuses as problems."""
    return {
        status: {
            "model": ValidationProblem if status == 422 else Problem,
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_JSON: {}},
        }
        for status in statuses
    }


def _describe(error: Any) -> FieldError:
    return FieldError(loc=list(error["loc"]), msg=error["msg"], type=error["type"])


def _invalid(fields: Iterable[Sequence[str | int]]) -> str:
    return "Invalid request: " + ", ".join(".".join(map(str, loc)) for loc in fields)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(AppError, exc)  # the handler for AppError: Starlette types it as Exception
    if isinstance(exc, InvalidInputError):
        return await _validation_error(request, RequestValidationError(exc.errors))
    return problem(exc.status_code, exc.detail, exc.headers, exc.type, **exc.extra)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(HTTPException, exc)
    headers, detail = dict(exc.headers or {}), exc.detail
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        # Starlette names the methods of the first route on the path only.
        headers["Allow"] = ", ".join(_allowed_methods(request))
        detail = f"{request.method} is not allowed here; use {headers['Allow']}."
    return problem(exc.status_code, detail, headers)


def _allowed_methods(request: Request) -> list[str]:
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL
            for route in request.app.router.routes
        )
    ]


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    errors = [_describe(error) for error in exc.errors()]
    return problem(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        _invalid(error.loc for error in errors),
        errors=[error.model_dump() for error in errors],
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("Database unavailable: %r", exc)
    DB_ERRORS.labels(type(exc).__name__).inc()
    return problem(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "The database is unavailable; try again shortly.",
        {"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The traceback goes to the log only: a response never shows internals.
    logger.error("Unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(HTTPStatus.INTERNAL_SERVER_ERROR, "An unexpected error occurred.")


class AnswerUnexpected:
    """Answer an error no handler maps with the 500 problem, here, inside the app.

    Starlette's own last-resort handler re-raises after answering, and uvicorn then closes
    the client's keep-alive connection, so its next request would fail."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            if scope["type"] != "http":
                raise
            await send_answer(await _unexpected(Request(scope), exc), exc, scope, receive, send)


async def send_answer(
    response: JSONResponse, exc: Exception, scope: Scope, receive: Receive, send: Send
) -> None:
    """Send `response`, the answer to `exc`; if a response had begun, re-raise `exc`: only
    closing the connection is left."""
    try:
        await response(scope, receive, send)
    except RuntimeError:  # the server refuses a second start
        raise exc from None


def install(app: FastAPI) -> None:
    """Route every error the app can raise to its problem response."""
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    for error in UNAVAILABLE:
        app.add_exception_handler(error, _database_unavailable)
    app.add_middleware(AnswerUnexpected)  # innermost, if installed before other middleware
    app.add_exception_handler(Exception, _unexpected)  # errors of the middleware around it
