"""Webhooks delivered by the app in this process to a real HTTP receiver."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support import bearer, issue_token
from tests.webhooks.receiver import Receiver
from user_service.config import get_settings
from user_service.main import get_app

SCOPES = ("webhooks:write", "users:read", "users:write", "audit:read", "metrics:read")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


# What the app delivers with: quick retries. A test parametrizes `settings` to change them.
FAST = {"WEBHOOK_DELIVERY": "true", "WEBHOOK_RETRY_DELAYS": "0s", "WEBHOOK_TIMEOUT": "2"}


@pytest.fixture
def settings() -> dict[str, str]:
    return FAST


@pytest.fixture
def delivering(settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Apps built meanwhile deliver webhooks, with `settings`."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture
def hooks(delivering: None, database_url: str) -> Iterator[TestClient]:
    """The app in this process, delivering webhooks; called with webhooks:write and the
    users API's scopes."""
    with TestClient(get_app(), raise_server_exceptions=False) as client:
        client.headers.update(bearer(issue_token(database_url, *SCOPES)))
        yield client


def subscribe(client: TestClient, url: str, *events: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/webhooks", json={"url": url, "events": list(events), **fields})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture
def manager(anonymous: TestClient, database_url: str) -> TestClient:
    """The app in this process (delivering nothing), called with webhooks:write."""
    anonymous.headers.update(bearer(issue_token(database_url, *SCOPES)))
    return anonymous
