"""People with accounts, in the app in this process, their emails delivered to a real SMTP
server."""

import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.smtp import SmtpServer
from user_service.config import get_settings
from user_service.main import get_app

PASSWORD = "correct horse battery staple"


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A real SMTP server that the service sends its emails to."""
    with SmtpServer() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        # One client address does all the tests' requests: its limit is tested on its own.
        monkeypatch.setenv("AUTH_ADDRESS_LIMIT_PER_MINUTE", "1000")
        get_settings.cache_clear()
        yield server
        monkeypatch.undo()
        get_settings.cache_clear()


@pytest.fixture
def app(smtp: SmtpServer) -> Iterator[TestClient]:
    """The app in this process, sending to `smtp`; no credentials."""
    with TestClient(get_app(), raise_server_exceptions=False) as client:
        yield client


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def link_token(message: EmailMessage) -> str:
    """The one-time token of the link in `message`."""
    found = re.search(r"[?&]token=([\w-]+)", text_of(message))
    assert found, text_of(message)
    return found[1]


def mails_to(smtp: SmtpServer, address: str, count: int = 1) -> list[EmailMessage]:
    """The messages to `address`, once at least `count` have arrived (10 s at most: a
    loaded machine delays the sender's poll)."""
    deadline = time.monotonic() + 10
    while True:
        found = [m for m in smtp.messages if m["To"].lower() == address.lower()]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{len(found)} emails to {address}, expected {count}"
            return found
        time.sleep(0.05)


def register(client: TestClient, email: str, name: str = "Alice", password: str = PASSWORD) -> None:
    response = client.post(
        "/auth/register", json={"email": email, "password": password, "name": name}
    )
    assert response.status_code == 202, response.text


def login(
    client: TestClient, email: str, password: str = PASSWORD, **headers: str
) -> dict[str, Any]:
    response = client.post(
        "/auth/login", data={"username": email, "password": password}, headers=headers
    )
    assert response.status_code == 200, response.text
    pair: dict[str, Any] = response.json()
    return pair


def signed_up(
    client: TestClient, smtp: SmtpServer, email: str, name: str = "Alice"
) -> dict[str, Any]:
    """Register, verify through the emailed link, sign in: the token pair."""
    register(client, email, name)
    token = link_token(mails_to(smtp, email)[-1])
    assert client.post("/auth/verify", json={"token": token}).status_code == 200
    return login(client, email)


def bearer(pair: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {pair['access_token']}"}
