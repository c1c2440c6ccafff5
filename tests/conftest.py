"""Tests run on a real PostgreSQL: a throwaway embedded server, or the one DB_DSN / DB_HOST
names (its `<db>_test` database, created if missing). Migrations build the schema once."""

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import make_url

os.environ["TESTING"] = "1"

from tests.support import Server, bearer, issue_token, run_sql
from user_service import database, migrations
from user_service.config import Settings, get_settings
from user_service.main import get_app


@pytest.fixture(scope="session", autouse=True)
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test database's URL, migrated to head. Every test and child process uses it."""
    if Settings().embedded:
        server = database.start_embedded(
            tmp_path_factory.mktemp("embedded") / "pgdata", delete_on_exit=True
        )
        os.environ["DB_DSN"] = str(make_url(server).set(database="user_service"))
    get_settings.cache_clear()
    migrations.upgrade()
    return database.dsn(database.resolve_url(get_settings()))


@pytest.fixture(autouse=True)
def _fresh_tables(database_url: str) -> Iterator[None]:
    yield
    tables = ", ".join(table.name for table in database.metadata.sorted_tables)
    if tables:
        run_sql(database_url, f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


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


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[Server]:
    live = Server()
    yield live
    code, output = live.stop()
    assert code == 0, output
