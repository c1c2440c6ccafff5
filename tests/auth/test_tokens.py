"""API tokens: every /users route needs one with the right scope; the CLI manages them."""

import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.support import CLI, Server, bearer, issue_token, run_sql
from tests.users.test_router import assert_problem
from user_service.config import get_settings
from user_service.main import get_app

ENDPOINTS = [
    ("GET", "/users", None, "users:read"),
    ("GET", "/users/1", None, "users:read"),
    ("POST", "/users", {"name": "x"}, "users:write"),
    ("PATCH", "/users/1", {"name": "y"}, "users:write"),
    ("DELETE", "/users/1", None, "users:write"),
]
TOKEN_SHAPE = re.compile(r"ust_[A-Za-z0-9_-]{43}")


def call(client: TestClient, endpoint: tuple[str, str, object, str], token: str) -> httpx2.Response:
    method, path, body, _ = endpoint
    return client.request(method, path, json=body, headers=bearer(token))


def tokens_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "tokens", *args], capture_output=True, text=True, timeout=60)


def users_count(database_url: str) -> int:
    count: int = run_sql(database_url, "SELECT count(*) AS n FROM users")[0]["n"]
    return count


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
def test_no_token_is_401_with_a_bearer_challenge(
    anonymous: TestClient, endpoint: tuple[str, str, object, str]
) -> None:
    method, path, body, _ = endpoint
    body = assert_problem(anonymous.request(method, path, json=body), 401)
    assert "Authorization: Bearer" in str(body["detail"])


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
@pytest.mark.parametrize(
    "header",
    ["Bearer ust_" + "A" * 43, "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "Bearer  "],
)
def test_wrong_token_is_401(
    anonymous: TestClient, endpoint: tuple[str, str, object, str], header: str, database_url: str
) -> None:
    method, path, body, _ = endpoint
    response = anonymous.request(method, path, json=body, headers={"Authorization": header})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith('Bearer realm="user-service"')
    assert users_count(database_url) == 0


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
def test_token_without_the_scope_is_403(
    anonymous: TestClient, endpoint: tuple[str, str, object, str], database_url: str
) -> None:
    needed = endpoint[3]
    other = {"users:read": "users:write", "users:write": "users:read"}[needed]
    response = call(anonymous, endpoint, issue_token(database_url, other))

    body = assert_problem(response, 403)
    assert needed in str(body["detail"])
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="user-service", error="insufficient_scope", scope="{needed}"'
    )
    assert users_count(database_url) == 0


def test_read_only_token_reads(anonymous: TestClient, database_url: str, token: str) -> None:
    created = anonymous.post("/users", json={"name": "readable"}, headers=bearer(token)).json()
    reader = bearer(issue_token(database_url, "users:read"))

    read = anonymous.get(f"/users/{created['id']}", headers=reader).json()
    no_account = {"email": None, "email_verified": False, "created_at": read["created_at"]}
    assert read == {**created, **no_account}
    assert anonymous.get("/users", headers=reader).json()["items"] == [{**created, **no_account}]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: f"{e[0]} {e[1]}")
def test_expired_token_is_401(
    anonymous: TestClient, endpoint: tuple[str, str, object, str], database_url: str
) -> None:
    token = issue_token(database_url, endpoint[3], expires_in=timedelta(seconds=1))
    assert call(anonymous, endpoint, token).status_code != 401
    run_sql(database_url, "UPDATE api_tokens SET expires_at = now() - interval '1 second'")
    body = assert_problem(call(anonymous, endpoint, token), 401)
    assert body["detail"] == "The token has expired."


def test_cli_creates_a_token_printed_alone_and_stored_only_as_a_hash(
    anonymous: TestClient, database_url: str
) -> None:
    created = tokens_cli("create", "--name", "ci deploy", "--scopes", "users:read")

    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n"  # nothing else on stdout: `$(...)` captures it
    assert TOKEN_SHAPE.fullmatch(token)
    assert "ci deploy" in created.stderr
    assert token not in created.stderr
    (row,) = run_sql(database_url, "SELECT * FROM api_tokens WHERE name = 'ci deploy'")
    assert row["token_hash"] == hashlib.sha256(token.encode()).digest()
    assert token not in str(dict(row))
    assert anonymous.get("/users", headers=bearer(token)).status_code == 200


def test_cli_lists_tokens_without_secrets_and_with_last_use(anonymous: TestClient) -> None:
    created = tokens_cli("create", "--name", "lister", "--scopes", "users:read,users:write")
    token = created.stdout.strip()
    expiring = tokens_cli(
        "create", "--name", "short", "--scopes", "users:read", "--expires-in", "90d"
    )
    assert expiring.returncode == 0, expiring.stderr

    before = tokens_cli("list").stdout.splitlines()
    anonymous.get("/users", headers=bearer(token))
    after = tokens_cli("list")

    assert after.returncode == 0, after.stderr
    assert token not in after.stdout
    header, *rows = after.stdout.splitlines()
    assert header.split() == ["NAME", "SCOPES", "CREATED", "EXPIRES", "LAST", "USED", "STATUS"]
    lister = next(row for row in rows if row.startswith("lister "))
    assert "users:read,users:write" in lister
    assert lister.split()[-1] == "live"
    assert "never" in next(row for row in before if row.startswith("lister "))  # not yet used
    assert lister.count("never") == 1  # used now; expires never
    short = next(row for row in rows if row.startswith("short "))
    assert short.count("never") == 1  # expires in 90 days; never used


def test_cli_refuses_what_it_cannot_do() -> None:
    tokens_cli("create", "--name", "taken", "--scopes", "users:read")
    cases = {
        ("create", "--name", "taken", "--scopes", "users:read"): "already exists",
        ("create", "--name", "x", "--scopes", "users:admin"): "unknown scope users:admin",
        ("create", "--name", "x", "--scopes", ","): "unknown scope (none)",
        ("create", "--name", "x", "--scopes", "users:read", "--expires-in", "soon"): "90d",
        ("create", "--name", "", "--scopes", "users:read"): "printable",
        ("revoke", "nobody"): "no live token is named 'nobody'",
    }
    for args, message in cases.items():
        result = tokens_cli(*args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == ""
        assert "Traceback" not in result.stderr


def test_revoked_token_stops_working_within_a_second_on_every_worker() -> None:
    # The production default: each worker trusts a checked token for a second.
    live = Server("--workers", "2", env={**os.environ, "AUTH_TOKEN_CACHE_SECONDS": "1"})
    try:
        name = "revoked-soon"
        token = tokens_cli("create", "--name", name, "--scopes", "users:read").stdout.strip()
        # New connections spread over both workers; each now holds the token as verified.
        for _ in range(20):
            assert httpx2.get(f"{live.url}/users", headers=bearer(token)).status_code == 200

        revoked = tokens_cli("revoke", name)
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(1.0)
        statuses = [
            httpx2.get(f"{live.url}/users", headers=bearer(token)).status_code for _ in range(20)
        ]
    finally:
        code, log = live.stop()
    assert statuses == [401] * 20, statuses
    assert code == 0, log
    assert len({line for line in log.splitlines() if "revoked-soon" in line}) > 0


def test_a_name_can_be_reused_once_revoked(database_url: str) -> None:
    assert tokens_cli("create", "--name", "rotating", "--scopes", "users:read").returncode == 0
    assert tokens_cli("revoke", "rotating").returncode == 0
    assert tokens_cli("create", "--name", "rotating", "--scopes", "users:read").returncode == 0
    statuses = run_sql(
        database_url, "SELECT revoked_at IS NULL AS live FROM api_tokens WHERE name = 'rotating'"
    )
    assert sorted(row["live"] for row in statuses) == [False, True]


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AUTH_FAILURES_PER_MINUTE", "3")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.usefixtures("limited")
def test_failed_authentications_are_rate_limited_per_address(token: str) -> None:
    wrong = bearer("ust_" + "B" * 43)
    with (
        TestClient(get_app(), client=("203.0.113.7", 40000)) as guesser,
        TestClient(get_app(), client=("198.51.100.1", 40000)) as neighbour,
    ):
        assert [guesser.get("/users", headers=wrong).status_code for _ in range(3)] == [401] * 3
        refused = guesser.get("/users", headers=wrong)
        # Refused before its token is looked at: a right guess now tells the guesser nothing.
        also_refused = guesser.get("/users", headers=bearer(token))
        other_address = neighbour.get("/users", headers=bearer(token))

    body = assert_problem(refused, 429)
    assert 0 < int(refused.headers["retry-after"]) <= 60
    assert f"retry in {refused.headers['retry-after']}s" in str(body["detail"])
    assert also_refused.status_code == 429
    assert other_address.status_code == 200


@pytest.mark.usefixtures("limited")
def test_successful_and_anonymous_traffic_is_not_limited(token: str) -> None:
    with TestClient(get_app()) as client:
        statuses = {client.get("/users", headers=bearer(token)).status_code for _ in range(50)}
        statuses |= {client.get("/users").status_code for _ in range(10)} - {401}
    assert statuses == {200}


@pytest.mark.parametrize(("trusted", "separate"), [("127.0.0.1", True), ("10.9.9.9", False)])
def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    trusted: str, separate: bool
) -> None:
    env = {**os.environ, "AUTH_FAILURES_PER_MINUTE": "2", "APP_FORWARDED_ALLOW_IPS": trusted}
    live = Server("--workers", "1", env=env)
    wrong = bearer("ust_" + "C" * 43)
    try:
        with httpx2.Client(base_url=live.url, headers=wrong) as proxy:
            first = [
                proxy.get("/users", headers={"X-Forwarded-For": "198.51.100.1"}).status_code
                for _ in range(3)
            ]
            second = proxy.get("/users", headers={"X-Forwarded-For": "198.51.100.2"})
    finally:
        code, log = live.stop()
    assert first == [401, 401, 429]
    # A trusted proxy's clients are told apart; an untrusted one's all share its address.
    assert second.status_code == (401 if separate else 429)
    assert code == 0, log
