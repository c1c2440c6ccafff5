"""Events reach a real receiver, signed as Standard Webhooks asks (checked by the spec
authors' own verifier), in order for one user, again after a failure, never twice once
taken, and only as subscribed."""

import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import WebhookVerificationError

from tests.support import bearer, issue_token
from tests.webhooks.conftest import FAST, SCOPES, subscribe
from tests.webhooks.receiver import Received, Receiver
from user_service.main import get_app
from user_service.webhooks.signing import new_secret

USER_EVENTS = ("user.created", "user.updated", "user.deleted")
QUIET = 2.5  # seconds: over two of the deliverer's polls, for "nothing more came"


def types(received: list[Received]) -> list[str]:
    return [r.payload["type"] for r in received]


def newest(
    client: TestClient, webhook_id: int, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The endpoint's newest delivery, once there is one and `done` says it is far enough."""
    deadline = time.monotonic() + 20
    while True:
        found = deliveries(client, webhook_id)
        if found and done(found[0]):
            return found[0]
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def deliveries(client: TestClient, webhook_id: int) -> list[dict[str, Any]]:
    response = client.get(f"/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_users_changes_arrive_signed_and_in_order(hooks: TestClient, receiver: Receiver) -> None:
    secret = subscribe(hooks, receiver.url, *USER_EVENTS)["secret"]
    user = hooks.post("/users", json={"name": "ada"}).json()
    hooks.patch(f"/users/{user['id']}", json={"name": "Ada Lovelace"})
    shown = hooks.get(f"/users/{user['id']}").json()
    assert hooks.delete(f"/users/{user['id']}").status_code == 200

    received = receiver.wait_count(3)
    assert types(received) == list(USER_EVENTS)
    payloads = [r.verified(secret) for r in received]
    assert [p["type"] for p in payloads] == list(USER_EVENTS)
    created, updated, deleted = (p["data"] for p in payloads)
    assert created == {**shown, "nickname": "ada"}
    assert updated == shown  # the user as GET /users/{id} shows it, byte for byte
    assert deleted == shown
    assert len({r.id for r in received}) == 3
    assert all(r.id.startswith("msg_") for r in received)
    for r in received:
        assert r.headers["content-type"] == "application/json"
        assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 60

    # The verifier refuses a tampered body, another secret and a replayed old timestamp.
    first = received[0]
    with pytest.raises(WebhookVerificationError):
        Received(first.headers, first.body.replace(b"ada", b"eve"), 200).verified(secret)
    with pytest.raises(WebhookVerificationError):
        first.verified(new_secret())
    stale = {**first.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(WebhookVerificationError):
        Received(stale, first.body, 200).verified(secret)


def test_only_subscribed_events_and_none_after_deletion(
    hooks: TestClient, receiver: Receiver
) -> None:
    webhook = subscribe(hooks, receiver.url, "user.deleted")
    for n in range(3):
        user = hooks.post("/users", json={"name": f"u{n}"}).json()
        hooks.patch(f"/users/{user['id']}", json={"name": f"v{n}"})
        hooks.delete(f"/users/{user['id']}")
    received = receiver.wait_count(3)
    assert types(received) == ["user.deleted"] * 3
    assert [r.payload["data"]["nickname"] for r in received] == ["v0", "v1", "v2"]

    assert hooks.delete(f"/webhooks/{webhook['id']}").status_code == 204
    hooks.delete(f"/users/{hooks.post('/users', json={'name': 'late'}).json()['id']}")
    time.sleep(QUIET)
    assert len(receiver.received) == 3


def test_a_failing_receiver_gets_the_same_id_again_and_it_is_taken_once(
    hooks: TestClient, receiver: Receiver
) -> None:
    webhook = subscribe(hooks, receiver.url, "user.created")
    receiver.answers = [500, 503]
    hooks.post("/users", json={"name": "retried"})
    received = receiver.wait_count(3)
    assert [r.status for r in received] == [500, 503, 200]
    assert len({r.id for r in received}) == 1
    time.sleep(QUIET)
    assert len(receiver.received) == 3  # taken: not sent again

    [delivery] = deliveries(hooks, webhook["id"])
    assert delivery["event_id"] == received[0].id
    assert delivery["type"] == "user.created"
    assert delivery["state"] == "delivered"
    assert delivery["next_attempt_at"] is None
    assert [a["status"] for a in delivery["attempts"]] == [500, 503, 200]
    assert all(a["error"] is None for a in delivery["attempts"])


@pytest.mark.parametrize("settings", [{**FAST, "WEBHOOK_RETRY_FOR": "1s"}])
def test_given_up_after_the_retry_window_then_retried_by_hand(
    hooks: TestClient, receiver: Receiver, settings: dict[str, str]
) -> None:
    webhook = subscribe(hooks, receiver.url, "user.created")
    receiver.answers = [500] * 1000
    hooks.post("/users", json={"name": "unlucky"})
    state = newest(hooks, webhook["id"], lambda delivery: delivery["state"] == "failed")
    tried = len(receiver.received)
    assert tried >= 1
    assert state["next_attempt_at"] is None
    kinds = [e["kind"] for e in hooks.get("/audit").json()["items"]]
    assert "webhook.failed" in kinds

    receiver.answers = []
    event_id = state["event_id"]
    retried = hooks.post(f"/webhooks/{webhook['id']}/deliveries/{event_id}/retry")
    assert retried.status_code == 202, retried.text
    received = receiver.wait_count(tried + 1)
    assert received[-1].id == event_id
    assert received[-1].status == 200
    assert hooks.post(f"/webhooks/{webhook['id']}/deliveries/msg_nope/retry").status_code == 404


def test_410_gone_disables_the_endpoint(hooks: TestClient, receiver: Receiver) -> None:
    webhook = subscribe(hooks, receiver.url, "user.created")
    receiver.answers = [410]
    hooks.post("/users", json={"name": "first"})
    receiver.wait_count(1)
    path = f"/webhooks/{webhook['id']}"
    deadline = time.monotonic() + 10
    while hooks.get(path).json()["enabled"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert hooks.get(path).json()["disabled_reason"] == "410 Gone"
    hooks.post("/users", json={"name": "second"})  # not queued: the endpoint is off
    time.sleep(QUIET)
    assert len(receiver.received) == 1

    enabled = hooks.patch(path, json={"enabled": True}).json()
    assert enabled["enabled"] is True
    assert enabled["disabled_reason"] is None
    hooks.post("/users", json={"name": "third"})
    assert receiver.wait_count(2)[-1].payload["data"]["nickname"] == "third"


def test_redirects_are_not_followed_and_a_slow_receiver_times_out(
    hooks: TestClient, receiver: Receiver
) -> None:
    webhook = subscribe(hooks, receiver.url, "user.created")
    receiver.answers = [302]
    hooks.post("/users", json={"name": "moved"})
    received = receiver.wait_count(2)  # the redirect failed it: tried again, here
    assert [r.status for r in received] == [302, 200]

    receiver.hold.set()
    hooks.post("/users", json={"name": "slow"})
    slow = newest(hooks, webhook["id"], lambda delivery: delivery["state"] == "pending")
    attempts = newest(hooks, webhook["id"], lambda delivery: delivery["attempts"] != [])["attempts"]
    assert slow["event_id"] not in {r.id for r in received}
    assert attempts[0]["error"] == "no answer within 2 s"
    assert attempts[0]["status"] is None
    receiver.release()


def test_after_a_rotation_both_secrets_sign_for_a_day(
    hooks: TestClient, receiver: Receiver
) -> None:
    webhook = subscribe(hooks, receiver.url, "user.created")
    old = webhook["secret"]
    new = hooks.post(f"/webhooks/{webhook['id']}/rotate-secret").json()["secret"]
    hooks.post("/users", json={"name": "rotated"})
    [received] = receiver.wait_count(1)
    assert len(received.headers["webhook-signature"].split()) == 2
    assert received.verified(new) == received.verified(old)
    with pytest.raises(WebhookVerificationError):
        received.verified(new_secret())


@pytest.mark.parametrize("trusted", [True, False])
def test_over_https_the_receivers_certificate_is_checked(
    trusted: bool,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    delivering: None,
    database_url: str,
) -> None:
    ca = trustme.CA()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    if trusted:
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    with Receiver(tls) as receiver, TestClient(get_app()) as client:
        client.headers.update(bearer(issue_token(database_url, *SCOPES)))
        webhook = subscribe(client, receiver.url, "user.created")
        client.post("/users", json={"name": "over tls"})
        if trusted:
            [received] = receiver.wait_count(1)
            assert received.verified(webhook["secret"])["data"]["nickname"] == "over tls"
            return
        attempts = newest(client, webhook["id"], lambda delivery: delivery["attempts"] != [])[
            "attempts"
        ]
        assert "CERTIFICATE_VERIFY_FAILED" in attempts[0]["error"]
        assert receiver.received == []
