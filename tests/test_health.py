"""Probes: /healthz says the process lives, /readyz that it can serve."""

import subprocess
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support import CLI, run_sql, run_with_connection
from user_service.main import get_app


def test_healthz_answers_without_the_database(anonymous: TestClient) -> None:
    response = anonymous.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_answers_200_when_the_schema_is_at_head(anonymous: TestClient) -> None:
    response = anonymous.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


@pytest.fixture
def unmigrated() -> Iterator[None]:
    subprocess.run([CLI, "downgrade", "base"], check=True, capture_output=True)
    yield
    subprocess.run([CLI, "migrate"], check=True, capture_output=True)


@pytest.mark.usefixtures("unmigrated")
def test_readyz_is_503_until_migrated(anonymous: TestClient) -> None:
    response = anonymous.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "reason": "schema at nothing, expected ['0009']",
    }


def test_readyz_tolerates_a_schema_migrated_ahead(anonymous: TestClient, database_url: str) -> None:
    """During a rolling update the new release migrates first: the old pods stay ready."""
    (head,) = run_sql(database_url, "SELECT version_num FROM alembic_version")
    run_sql(database_url, "UPDATE alembic_version SET version_num = 'from_the_future'")
    try:
        assert anonymous.get("/readyz").status_code == 200
    finally:
        run_with_connection(
            database_url,
            lambda c: c.execute("UPDATE alembic_version SET version_num = $1", head[0]),
        )


@pytest.mark.usefixtures("unreachable_database")
def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    with TestClient(get_app()) as client:
        ready, healthy = client.get("/readyz"), client.get("/healthz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "database unavailable"}
    assert healthy.status_code == 200
