"""People's accounts send their events too: from sign-up to deletion, each with its change."""

import pytest
from fastapi.testclient import TestClient

from tests.accounts.conftest import PASSWORD, bearer, login, signed_up, smtp  # noqa: F401
from tests.smtp import SmtpServer
from tests.webhooks.conftest import subscribe
from tests.webhooks.receiver import Receiver
from user_service.webhooks.events import TYPES


@pytest.fixture
def people(smtp: SmtpServer, hooks: TestClient) -> TestClient:  # noqa: F811
    """`hooks`, its emails going to `smtp` (set up first)."""
    return hooks


def test_an_accounts_life_sends_its_events(
    people: TestClient,
    smtp: SmtpServer,  # noqa: F811
    receiver: Receiver,
) -> None:
    secret = subscribe(people, receiver.url, *TYPES)["secret"]
    pair = signed_up(people, smtp, "grace@example.com", "Grace")
    me = people.get("/users/me", headers=bearer(pair)).json()
    user_id = me["id"]
    people.patch("/users/me", json={"name": "Grace Hopper"}, headers=bearer(pair))
    changed = people.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(pair),
    )
    assert changed.status_code == 204
    for action in ("disable", "enable"):
        done = people.post(f"/console/users/{user_id}/{action}")
        assert done.status_code in (200, 303), done.text

    expected = [
        "user.created",
        "account.verified",
        "user.updated",
        "account.signed_in",
        "user.updated",
        "account.password_changed",
    ]
    received = receiver.wait_count(len(expected))
    payloads = [r.verified(secret) for r in received]
    assert [p["type"] for p in payloads] == expected
    assert all(p["data"]["id"] == user_id for p in payloads)
    assert payloads[0]["data"]["email_verified"] is False
    assert payloads[1]["data"]["email"] == "grace@example.com"
    assert payloads[1]["data"]["email_verified"] is True
    assert payloads[3]["data"]["details"] == {"amr": ["pwd"]}  # never the session's id
    assert payloads[4]["data"]["nickname"] == "Grace Hopper"
    assert login(people, "grace@example.com", "a brand new passphrase")
