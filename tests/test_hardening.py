"""What every response carries and never carries; browser-facing switches."""

import http.client
import os
import re
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

from tests.support import Server, bearer, issue_token, run_sql
from user_service.config import get_settings
from user_service.main import get_app


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Set variables with the returned monkeypatch, then build the app."""
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def app_with(monkeypatch: pytest.MonkeyPatch, **variables: str) -> TestClient:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    return TestClient(get_app(), raise_server_exceptions=False)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/users", 200),
        ("GET", "/users/1", 404),
        ("GET", "/users/0", 422),
        ("DELETE", "/users", 405),
        ("GET", "/healthz", 200),
    ],
)
def test_every_answer_forbids_sniffing_and_caching(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = client.request(method, path)
    assert response.status_code == status
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_unauthenticated_answers_carry_them_too(anonymous: TestClient) -> None:
    response = anonymous.get("/users")
    assert response.status_code == 401
    assert response.headers["x-content-type-options"] == "nosniff"


def test_cors_is_off_by_default(client: TestClient) -> None:
    preflight = client.options(
        "/users",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    simple = client.get("/users", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_only_the_listed_origins(configured: pytest.MonkeyPatch, token: str) -> None:
    origins = "https://app.example, https://admin.example"
    with app_with(configured, CORS_ORIGINS=origins) as client:
        allowed = client.options(
            "/users",
            headers={
                "Origin": "https://admin.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        refused = client.options(
            "/users",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        simple = client.get("/users", headers={"Origin": "https://app.example", **bearer(token)})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://admin.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()


def test_docs_are_served_unless_disabled(configured: pytest.MonkeyPatch) -> None:
    with app_with(configured) as client:
        assert client.get("/docs").status_code == 200
        schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert schemes["bearer"]["scheme"] == "bearer"
    with app_with(configured, DOCS_ENABLED="false") as client:
        assert [client.get(path).status_code for path in ("/docs", "/redoc", "/openapi.json")] == [
            404
        ] * 3


def test_metrics_need_a_token_unless_public(
    configured: pytest.MonkeyPatch, database_url: str
) -> None:
    reader = bearer(issue_token(database_url, "users:read"))
    with app_with(configured) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=reader).status_code == 403
        assert client.get("/metrics", headers=bearer(issue_token(database_url))).status_code == 200
    with app_with(configured, METRICS_PUBLIC="true") as client:
        assert client.get("/metrics").status_code == 200


def test_internal_errors_leak_nothing_and_secrets_stay_out_of_logs(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    password = "hunter2-never-logged"
    dsn = make_url(os.environ["DB_DSN"]).set(password=password)
    live = start_server(env={**os.environ, "DB_DSN": dsn.render_as_string(hide_password=False)})
    token = live.token()
    with live.client() as client:
        created = client.post("/users", json={"name": "x"})
        assert created.status_code == 201
        run_sql(database_url, "ALTER TABLE users RENAME TO users_elsewhere")
        try:
            broken = client.get(f"/users/{created.json()['id']}")
        finally:
            run_sql(database_url, "ALTER TABLE users_elsewhere RENAME TO users")
        wrong = client.get("/users", headers=bearer(token[:-1] + "x"))
    assert not any(c.isdigit() for c in broken.headers.get("server", ""))  # no version banner
    code, log = live.stop()

    assert broken.status_code == 500
    assert broken.json()["detail"] == "An unexpected error occurred."
    for leak in ("users", "SELECT", "Traceback", "asyncpg", "postgres", password):
        assert leak not in broken.text
    assert wrong.status_code == 401
    assert "UndefinedTableError" in log  # the operator sees what happened...
    assert password not in log  # ... but no secret
    assert token not in log
    assert token[:-1] not in log
    assert code == 0, log


def test_a_500_leaves_the_keep_alive_connection_open(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    live = start_server("--workers", "1")
    headers = bearer(live.token())
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    try:
        run_sql(database_url, "ALTER TABLE users RENAME TO users_elsewhere")
        try:
            connection.request("GET", "/users/1", headers=headers)
            broken = connection.getresponse()
            broken.read()
        finally:
            run_sql(database_url, "ALTER TABLE users_elsewhere RENAME TO users")
        time.sleep(0.2)  # a server about to close the connection has done so by now
        connection.request("GET", "/users/1", headers=headers)  # http.client never reconnects
        after = connection.getresponse()
        after.read()
    finally:
        connection.close()
    code, log = live.stop()
    assert broken.status == 500
    assert after.status == 404
    assert code == 0, log


# Headers that differ between any two answers: a HEAD's are the GET's but for these.
_VOLATILE = {"date", "x-request-id", "set-cookie"}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/users", 200),  # the hot path
        ("/users/7", 404),  # the hot path, then FastAPI's answer
        ("/users/0", 422),
        ("/users/me", 403),  # not a person's token
        ("/.well-known/jwks.json", 200),
        ("/account/sign-in", 200),  # a page
        ("/console", 303),
        ("/static/style.css", 200),
        ("/nowhere", 404),
    ],
)
def test_head_answers_as_get_without_the_body(server: Server, path: str, status: int) -> None:
    with server.client() as client:
        get, head = client.get(path), client.head(path)
    assert (get.status_code, head.status_code) == (status, status)
    assert head.content == b""
    assert {k: v for k, v in head.headers.items() if k not in _VOLATILE} == {
        k: v for k, v in get.headers.items() if k not in _VOLATILE
    }


def test_head_where_there_is_no_get_is_405(server: Server) -> None:
    with server.client() as client:
        refused = client.head("/auth/register")
    assert refused.status_code == 405
    assert refused.headers["allow"] == "POST"


def test_the_api_docs_refer_to_nothing_off_the_service(configured: pytest.MonkeyPatch) -> None:
    with app_with(configured) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert "<script>" not in page.text  # no inline script: the CSP would refuse it
        loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert loaded
        assert all(url.startswith("/docs/") for url in loaded), loaded
        for url in loaded:
            assert client.get(url).status_code == 200, url
        redoc = client.get("/redoc", follow_redirects=False)
        assert (redoc.status_code, redoc.headers["location"]) == (308, "/docs")


def test_api_docs_false_turns_the_pages_off_and_keeps_the_document(
    configured: pytest.MonkeyPatch,
) -> None:
    with app_with(configured, API_DOCS="false") as client:
        assert [client.get(path).status_code for path in ("/docs", "/redoc")] == [404, 404]
        assert client.get("/docs/vendor/swagger-ui-bundle.js").status_code == 404
        assert client.get("/openapi.json").status_code == 200
