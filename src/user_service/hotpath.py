"""The hot path: a feature's busiest routes answered without FastAPI's per-request machinery.

For each request FastAPI matches the path against every route in turn (the users routes
come after about sixty others) and solves the route's dependency graph: together about 40 %
of a GET's time in our code (profiled). A hot route has that work done once, at startup: it
knows which parameters to validate, with FastAPI's own fields, which scopes to check and
where the database is. It answers only requests that are valid in every part; anything else
(a malformed id, an unreadable or invalid body, an unexpected content type) goes to the
FastAPI route unchanged, which answers as it always has. So the errors, their order and the
OpenAPI document stay FastAPI's.

It leans on FastAPI's and Starlette's internals (the route's `Dependant`, Starlette's
`get_route_path`), as they are in the versions of PROVEN: `tests/test_hotpath.py` proves its
answers equal to FastAPI's there, and pyproject.toml caps both at them. With any other
version installed, the app routes as plain FastAPI, and says so once.
"""

import inspect
import json
import logging
from collections.abc import Callable, Iterable
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import get_route_path
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth.guard import Bearer
from .database import get_db
from .errors import AnswerUnexpected, send_answer
from .http import JSON_BODY, BodySizeLimit, is_json, over_limit
from .observability import RequestObserver

logger = logging.getLogger(__name__)

# The minor versions whose internals this module is proven against.
PROVEN = {"fastapi": "0.165", "starlette": "1.10"}

_NONE = QueryParams()  # a request's query when it has none: parsing nothing costs too

# A parameter the endpoint receives: its name and how to get it from a checked request.
_Source = Callable[[Request], Any]


class HotRoute:
    """One FastAPI route, its per-request needs worked out once."""

    def __init__(self, route: APIRoute) -> None:
        self.route = route
        dependant = route.dependant
        self.guards: list[Bearer] = []
        json_body = False
        self.sources: dict[str, _Source] = {}
        for needed in dependant.dependencies:
            if isinstance(needed.call, Bearer):
                self.guards.append(needed.call)
            elif needed.call is JSON_BODY.dependency:
                json_body = True  # checked with the body: is_json
            elif needed.call is get_db and needed.name:
                self.sources[needed.name] = _database
            else:
                raise ValueError(f"{route.path}: no hot path for the dependency {needed.call}")
        if dependant.request_param_name:
            self.sources[dependant.request_param_name] = _itself
        _refuse_the_rest(route, dependant)
        self.path_params = dependant.path_params
        self.query_params = dependant.query_params
        [*self.body] = dependant.body_params
        if len(self.body) > 1 or (self.body and not json_body):
            raise ValueError(f"{route.path}: a hot route takes one JSON body")

    async def answer(
        self,
        request: Request,
        values: dict[str, Any],
        receive: Receive,
        send: Send,
        invalid: ASGIApp,
    ) -> None:
        """Answer the request; if its body is not valid, hand it to `invalid` (its FastAPI
        route, or the app's routes when answered ahead of the middleware)."""
        if self.body:
            raw = await request.body()
            body = self._valid_body(request, raw)
            if body is None:
                # What was read, then whatever the client sends next.
                await invalid(request.scope, _replay(raw, receive), send)
                return
            values[self.body[0].name] = body
        for guard in self.guards:  # as FastAPI would, had it found the request valid
            await guard(request)
        for name, source in self.sources.items():
            values[name] = source(request)
        response: Response = await self.route.endpoint(**values)
        await response(request.scope, receive, send)

    def valid_parameters(self, path: dict[str, str], query: QueryParams) -> dict[str, Any] | None:
        """The path and query parameters, validated; None if any is invalid."""
        values = {}
        for fields, given in ((self.path_params, path), (self.query_params, query)):
            for field in fields:
                raw = given.get(field.alias)
                if raw is None:
                    if field.field_info.is_required():
                        return None
                    values[field.name] = field.default
                    continue
                value, errors = field.validate(raw)
                if errors:
                    return None
                values[field.name] = value
        return values

    def _valid_body(self, request: Request, raw: bytes) -> Any:
        if not is_json(request.headers.get("content-type")):
            return None
        try:
            parsed = json.loads(raw)  # as FastAPI parses it
        except ValueError:
            return None
        value, errors = self.body[0].validate(parsed)
        return None if errors else value

    async def to_fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        _, child = self.route.matches(scope)
        scope.update(child)
        await self.route.handle(scope, receive, send)


class HotRoutes(BaseRoute):
    """The app's first route: it claims the requests of its hot routes, by method and path."""

    def __init__(self) -> None:
        self.by_method: dict[str, list[HotRoute]] = {}

    def add(self, routes: Iterable[APIRoute]) -> None:
        for route in routes:
            hot = HotRoute(route)
            for method in route.methods or ():
                self.by_method.setdefault(method, []).append(hot)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        # A request with a parameter out of the ordinary goes on to the other routes, as if
        # this one were not there: FastAPI answers it, or an earlier route claims it (as
        # GET /users/me is not GET /users/{user_id}).
        if scope["type"] == "http":
            path = get_route_path(scope)
            for hot in self.by_method.get(scope["method"], ()):
                found = hot.route.path_regex.match(path)
                if found is None:
                    continue
                path_params = found.groupdict()
                query = scope["query_string"]
                values = hot.valid_parameters(path_params, QueryParams(query) if query else _NONE)
                if values is None:
                    break
                return Match.FULL, {
                    "hot": (hot, values),
                    "route": hot.route,
                    "endpoint": hot.route.endpoint,
                    "path_params": path_params,
                }
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot, values = scope["hot"]
        await hot.answer(Request(scope, receive), values, receive, send, hot.to_fastapi)

    def taker(self, route: Route) -> str | None:
        """The path of the hot route that would answer `route`'s requests (a fixed path of
        another route), if any."""
        if route.param_convertors:
            return None
        for method in route.methods or ():
            for hot in self.by_method.get(method, ()):
                if hot.route is route:
                    continue
                found = hot.route.path_regex.match(route.path)
                if found and hot.valid_parameters(found.groupdict(), _NONE):
                    return hot.route.path
        return None

    def would_take(self, route: Route) -> bool:
        return self.taker(route) is not None


def unproven() -> list[str]:
    """The installed packages of PROVEN at another minor version, with it."""
    installed = {name: version(name) for name in PROVEN}
    return [
        f"{name} {found}"
        for name, found in installed.items()
        if found.split(".")[:2] != PROVEN[name].split(".")
    ]


def serve(app: FastAPI, routes: Iterable[BaseRoute]) -> None:
    """Answer `routes` (a feature's busiest, already mounted) on the hot path, ahead of the
    other routes: so none of those may serve a path that one of these would take."""
    others = unproven()
    if others:
        logger.warning(
            "No hot path with %s (proven with %s): FastAPI routes every request",
            ", ".join(others),
            ", ".join(f"{name} {minor}" for name, minor in PROVEN.items()),
        )
        return
    hot = [route for route in routes if isinstance(route, APIRoute)]
    new = HotRoutes()
    new.add(hot)
    for other in app.router.routes:
        if isinstance(other, APIRoute) and (taker := new.taker(other)):
            raise ValueError(f"{taker} would take {other.path} from an earlier route")
    first = app.router.routes[0] if app.router.routes else None
    if isinstance(first, HotRoutes):
        first.add(hot)
    else:
        app.router.routes.insert(0, new)


class FrontDoor:
    """Ahead of the app's middleware: a request a hot route claims, with no body or one of a
    declared length within the limit, is answered here, observed as every request is, its
    errors answered by the app's handlers. The dozen layers it skips (Starlette's and
    FastAPI's error, telemetry and body-limit middleware, ours, the router) would each pass
    it on unchanged: together about a fifth of a GET's time in a worker (py-spy).

    It stands in for the middleware it knows (STANDS_IN_FOR): with any other installed, it
    stands aside. With CORS on, a request with an Origin goes the long way, for its headers."""

    STANDS_IN_FOR: tuple[object, ...] = (
        RequestObserver,
        BodySizeLimit,
        CORSMiddleware,
        AnswerUnexpected,
    )

    def __init__(self, stack: ASGIApp, hot: HotRoutes, middleware: list[Middleware]) -> None:
        self.stack = stack
        self.hot = hot
        given: dict[object, Any] = {entry.cls: entry.kwargs for entry in middleware}
        self.max_body: int = given[BodySizeLimit]["max_bytes"]
        self.cors = CORSMiddleware in given
        self.answer = RequestObserver(self._handle, **given[RequestObserver])
        # Where a request found invalid after all goes: the stack from its exception
        # handlers in, which routes it again (and sets what FastAPI's routes expect).
        self.routes = stack
        while not isinstance(self.routes, ExceptionMiddleware):
            self.routes = self.routes.app  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._plain(scope["headers"]):
            found, child = self.hot.matches(scope)
            if found is Match.FULL:
                scope.update(child)
                await self.answer(scope, receive, send)
                return
        await self.stack(scope, receive, send)

    def _plain(self, headers: list[tuple[bytes, bytes]]) -> bool:
        for name, value in headers:
            if name == b"content-length":
                if over_limit(value, self.max_body):  # BodySizeLimit's 413
                    return False
            elif name == b"transfer-encoding" or (name == b"origin" and self.cors):
                return False
        return True

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        hot, values = scope["hot"]
        request = Request(scope, receive)
        try:
            await hot.answer(request, values, receive, send, self.routes)
        except Exception as exc:
            # As Starlette's exception middleware looks it up; `Exception`'s handler included,
            # as AnswerUnexpected would answer it.
            handler: Any = _lookup_exception_handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            await send_answer(await handler(request, exc), exc, scope, receive, send)


def front_door(app: FastAPI, stack: ASGIApp) -> ASGIApp:
    """`stack` (the app's middleware and routes), behind a FrontDoor if the app has hot
    routes and no middleware the door does not stand in for."""
    hot = app.router.routes[0] if app.router.routes else None
    known = all(entry.cls in FrontDoor.STANDS_IN_FOR for entry in app.user_middleware)
    if not isinstance(hot, HotRoutes) or not known:
        return stack
    return FrontDoor(stack, hot, app.user_middleware)


def _refuse_the_rest(route: APIRoute, dependant: Dependant) -> None:
    others = (
        dependant.header_params,
        dependant.cookie_params,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    fields = [*dependant.path_params, *dependant.query_params]
    if any(others) or any(field.alias != field.name for field in fields):
        raise ValueError(f"{route.path}: only path, query, body and Request on the hot path")
    answer = inspect.signature(route.endpoint, eval_str=True).return_annotation
    if not (isinstance(answer, type) and issubclass(answer, Response)):
        raise ValueError(f"{route.path}: a hot route's endpoint returns its Response")


def _database(request: Request) -> Any:
    return request.app.state.db


def _itself(request: Request) -> Request:
    return request


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
