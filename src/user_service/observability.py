"""Per-request observation: the X-Request-ID, one log line, Prometheus metrics."""

import asyncio
import os
import random
import re
import time
from collections.abc import Sequence
from functools import cache
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import logs
from .database import Pool

REQUESTS = Counter("http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
# Gauges of several worker processes add up (prometheus-client's multiprocess mode).
IN_FLIGHT = Gauge(
    "http_requests_in_flight", "HTTP requests being answered.", multiprocess_mode="livesum"
)
POOL_SIZE = Gauge(
    "db_pool_connections", "Open database connections in the pools.", multiprocess_mode="livesum"
)
POOL_IN_USE = Gauge(
    "db_pool_connections_in_use",
    "Database connections serving a request.",
    multiprocess_mode="livesum",
)
DB_ERRORS = Counter("db_errors_total", "Requests failed for an unavailable database.", ["error"])

# What a client may send as its X-Request-ID; anything else is replaced by a fresh id.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "<unmatched>"  # the route label for paths no route matched: bounded cardinality


class RequestObserver:
    """Give each request an id (the client's X-Request-ID or a new one), echo it on the
    response with `headers` (one middleware, not one per header: each costs a layer per
    request), and record one log line and the request metrics when it ends."""

    def __init__(
        self, app: ASGIApp, access: logs.AccessLog, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        self.app = app
        self.access = access
        self.headers = tuple(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"")
        rid = incoming if _REQUEST_ID.fullmatch(incoming) else _new_request_id()
        token = logs.request_id.set(rid.decode())
        status = 500  # what the client gets if the app fails before answering
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", rid),
                    *self.headers,
                ]
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            route = _template(scope)
            method = scope["method"]
            _counter(method, route, status).inc()
            _histogram(method, route).observe(elapsed)
            principal = scope.get("state", {}).get("principal")
            self.access.write(method, route, status, elapsed, principal and principal.name)
            logs.request_id.reset(token)


@cache
def _counter(method: str, route: str, status: int) -> Counter:
    return REQUESTS.labels(method, route, status)  # looked up once per label set, not per request


@cache
def _histogram(method: str, route: str) -> Histogram:
    return LATENCY.labels(method, route)


def _new_request_id() -> bytes:
    # An id, not a secret: `random` (reseeded in each forked worker) spares a system call
    # per request that uuid4 would make.
    return b"%032x" % random.getrandbits(128)


async def report_pool(pool: Pool, interval: float = 1.0) -> None:
    """Keep the pool gauges current (each worker writes its own; /metrics adds them up)."""
    while True:
        POOL_SIZE.set(pool.get_size())
        POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
        await asyncio.sleep(interval)


def _template(scope: Scope) -> str:
    """The path template of the route that answered (FastAPI's own docs routes record only
    their endpoint: their paths are fixed)."""
    route = scope.get("route")
    if route is not None:
        return str(route.path)
    return str(scope["path"]) if "endpoint" in scope else UNMATCHED


def metrics() -> Response:
    """Prometheus metrics of every worker process."""
    registry = REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install(
    app: FastAPI,
    guard: Sequence[Any],
    access: logs.AccessLog,
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """Observe every request, logging it to `access` and adding `headers` to each response;
    serve /metrics behind the `guard` dependencies."""
    app.add_middleware(RequestObserver, access=access, headers=headers)
    app.add_api_route(
        "/metrics", metrics, methods=["GET"], include_in_schema=False, dependencies=guard
    )
