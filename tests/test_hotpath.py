"""The hot path answers exactly as FastAPI would: the same status, body and headers for any
request, valid or not, with or without a good token; and it claims no request that FastAPI
would route elsewhere."""

import json
import logging
import re
from collections.abc import Iterator
from importlib.metadata import version
from typing import Annotated, Any
from urllib.parse import urlencode

import pytest
from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Match

from tests.support import bearer, issue_token
from user_service import hotpath
from user_service.config import get_settings
from user_service.http import Json
from user_service.main import get_app, mount

IDS = st.one_of(
    st.integers(-2, 5).map(str),
    st.sampled_from(["me", "9223372036854775807", "9223372036854775808", "1.5", "0x1", " 1"]),
)
QUERIES = st.dictionaries(
    st.sampled_from(["limit", "after", "q", "sort", "other"]),
    st.one_of(st.integers(-1, 120).map(str), st.sampled_from(["", "id", "-created", "x", "5_"])),
    max_size=3,
)
BODIES = st.one_of(
    st.dictionaries(
        st.sampled_from(["name", "nickname"]),
        st.one_of(st.text(max_size=5), st.integers(), st.none()),
        max_size=2,
    ).map(json.dumps),
    st.sampled_from(["", "{", "[]", "null", '{"name": "a\\u0000"}', '{"name": "\\ud800"}']),
)
CONTENT_TYPES = st.sampled_from(
    [None, "application/json", "application/merge-patch+json", "text/plain", "application/x"]
)


@pytest.fixture(scope="module")
def apps(database_url: str) -> Iterator[tuple[TestClient, TestClient, dict[str, str]]]:
    """The app, and the same app with its hot path taken out; tokens for both."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUTH_FAILURES_PER_MINUTE", "1000000")  # bad tokens are sent on purpose
        get_settings.cache_clear()
        hot, plain = get_app(), get_app()
        plain.router.routes = [
            route for route in plain.router.routes if not isinstance(route, hotpath.HotRoutes)
        ]
        assert isinstance(hot.router.routes[0], hotpath.HotRoutes)
        with (
            TestClient(hot, raise_server_exceptions=False) as hot_client,
            TestClient(plain, raise_server_exceptions=False) as plain_client,
        ):
            tokens = {
                "every scope": issue_token(database_url),
                "read only": issue_token(database_url, "users:read"),
                "not a token": "ust_forged",
            }
            yield hot_client, plain_client, tokens
    get_settings.cache_clear()


def _routes(client: TestClient) -> list[BaseRoute]:
    app: FastAPI = client.app  # type: ignore[assignment]
    return app.router.routes


def _seen(response: Any) -> tuple[int, Any, dict[str, str]]:
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in ("x-request-id", "content-length", "location")
    }
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and response.status_code == 201:
        body.pop("id", None)  # each app creates its own user
    return response.status_code, body, headers


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PATCH", "PUT", "HEAD"]),
    path=st.one_of(st.just("/users"), st.just("/users/"), IDS.map("/users/{}".format)),
    query=QUERIES,
    body=st.none() | BODIES,
    content_type=CONTENT_TYPES,
    token=st.sampled_from([None, "every scope", "read only", "not a token"]),
)
def test_any_request_gets_the_answer_fastapi_gives(
    apps: tuple[TestClient, TestClient, dict[str, str]],
    method: str,
    path: str,
    query: dict[str, str],
    body: str | None,
    content_type: str | None,
    token: str | None,
) -> None:
    hot, plain, tokens = apps
    headers = bearer(tokens[token]) if token else {}
    if content_type:
        headers["Content-Type"] = content_type
    answers = [
        _seen(app.request(method, path, params=query, headers=headers, content=body))
        for app in (hot, plain)
    ]

    assert answers[0] == answers[1]


def test_a_hot_route_may_not_take_a_path_an_earlier_route_serves() -> None:
    app = FastAPI()
    router = APIRouter()

    @app.get("/things/mine")
    async def mine() -> Json:
        return Json([])

    @router.get("/things/{thing}")
    async def thing(thing: Annotated[str, Path(pattern=r"^\w+$")], request: Request) -> Json:
        return Json(thing)

    app.router.routes.extend(router.routes)
    with pytest.raises(ValueError, match=re.escape("/things/{thing} would take /things/mine")):
        hotpath.serve(app, router.routes)


# Whatever a path parameter of any route may be given, and then some.
SEGMENTS = st.one_of(
    IDS,
    st.uuids().map(str),
    st.sampled_from(["me", "password", "sessions", "email", "x", "%20", "1/extra"]),
)
METHODS = st.sampled_from(["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), method=METHODS, query=QUERIES)
def test_no_hot_route_claims_a_request_fastapi_routes_elsewhere(
    apps: tuple[TestClient, TestClient, dict[str, str]],
    data: st.DataObject,
    method: str,
    query: dict[str, str],
) -> None:
    hot, plain, _ = apps
    templates = sorted({r.path for r in _routes(plain) if isinstance(r, APIRoute)})
    template = data.draw(st.sampled_from(templates))
    path = re.sub(r"{[^}]+}", lambda _: data.draw(SEGMENTS), template)
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": urlencode(query).encode(),
        "headers": [],
    }
    hot_routes = _routes(hot)[0]
    assert isinstance(hot_routes, hotpath.HotRoutes)

    claimed, child = hot_routes.matches(scope)

    routed = next((r for r in _routes(plain) if r.matches(scope)[0] is Match.FULL), None)
    if claimed is Match.FULL:
        assert isinstance(routed, APIRoute), (method, path)
        assert (routed.path, routed.methods) == (child["route"].path, child["route"].methods)


def test_another_fastapi_or_starlette_routes_every_request_through_fastapi(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, token: str
) -> None:
    monkeypatch.setattr(
        "user_service.hotpath.version",
        lambda name: "1.11.0" if name == "starlette" else version(name),
    )
    with caplog.at_level(logging.WARNING), TestClient(get_app()) as client:
        assert not any(isinstance(r, hotpath.HotRoutes) for r in _routes(client))
        assert client.get("/users", headers=bearer(token)).status_code == 200
    [warning] = [r.getMessage() for r in caplog.records if r.name == "user_service.hotpath"]
    assert "No hot path with starlette 1.11.0 (proven with fastapi 0.165, starlette 1.10)" in (
        warning
    )


def test_a_fixed_path_mounted_after_a_hot_route_that_would_take_it_is_refused() -> None:
    app = FastAPI()
    hot, later = APIRouter(), APIRouter()

    @hot.get("/things/{thing}")
    async def thing(thing: int, request: Request) -> Json:
        return Json(thing)

    @later.get("/things/7")
    async def seven() -> Json:
        return Json(7)

    mount(app, hot)
    hotpath.serve(app, hot.routes)
    with pytest.raises(ValueError, match=re.escape("/things/7 would be answered by a hot route")):
        mount(app, later)


def test_the_front_door_stands_aside_for_middleware_it_does_not_know(token: str) -> None:
    app = get_app()

    @app.middleware("http")
    async def stamp(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Stamped"] = "yes"
        return response

    with TestClient(app) as client:
        answer = client.get("/users/1", headers=bearer(token))

    assert answer.status_code in (200, 404)
    assert answer.headers["X-Stamped"] == "yes"


def test_an_unexpected_error_on_a_hot_route_is_the_500_problem(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("user_service.users.repository.get", broken)
    with TestClient(get_app(), raise_server_exceptions=False) as client:
        answer = client.get("/users/1", headers=bearer(token))
        after = client.get("/users", headers=bearer(token))

    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"] == "An unexpected error occurred."
    assert "secret" not in answer.text
    assert answer.headers["x-request-id"]
    assert after.status_code == 200
