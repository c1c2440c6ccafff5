"""The webhooks API: who may use it, what it refuses, and that a secret is shown once."""

import base64
import re

import pytest
from fastapi.testclient import TestClient

from tests.support import bearer, issue_token
from tests.webhooks.conftest import subscribe
from user_service.webhooks.events import TYPES


def test_needs_a_token_with_webhooks_write(manager: TestClient, database_url: str) -> None:
    body = {"url": "https://example.com/hooks", "events": ["user.created"]}
    anonymous = manager.post("/webhooks", json=body, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    weak = bearer(issue_token(database_url, "users:write", "users:read"))
    for method, path in [("POST", "/webhooks"), ("GET", "/webhooks"), ("GET", "/webhooks/1")]:
        response = manager.request(method, path, json=body, headers=weak)
        assert response.status_code == 403, (method, path, response.text)
        assert "webhooks:write" in response.json()["detail"]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://10.0.0.7/hooks", "private"),
        ("https://192.168.1.1/hooks", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://127.0.0.2/", "loopback"),  # beside the tests' 127.0.0.1/32, not in it
        ("https://[::1]/", "loopback"),
        ("https://[::ffff:10.0.0.1]/", "private"),
        ("https://224.0.0.1/", "multicast"),
        ("https://0.0.0.0/", "unspecified"),
        ("https://240.0.0.1/", "reserved"),
        ("http://93.184.215.14/hooks", "https"),  # http only into the allowed networks
        ("ftp://example.com/hooks", "https"),
        ("file:///etc/passwd", "https"),
        ("javascript:alert(1)", "https"),
        ("not a url at all", "https"),
        ("https://", "no host"),
        ("https://user:secret@example.com/", "credentials"),
        ("https://example.com:99999/", "not a URL"),
        ("https://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_refuses_urls_outside_the_allowed_networks(
    manager: TestClient, url: str, says: str
) -> None:
    response = manager.post("/webhooks", json={"url": url, "events": ["user.created"]})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["errors"][0]["loc"] == ["body", "url"]
    assert says in problem["errors"][0]["msg"], problem
    assert manager.get("/webhooks").json()["items"] == []


def test_refuses_an_unknown_event_naming_it(manager: TestClient) -> None:
    body = {"url": "http://127.0.0.1:9/hooks", "events": ["user.created", "user.exploded"]}
    response = manager.post("/webhooks", json=body)
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["loc"] == ["body", "events", 1]
    assert "user.exploded" in error["msg"]
    for bad in ([], "user.created", [1], None):
        assert manager.post("/webhooks", json={**body, "events": bad}).status_code == 422
    extra = manager.post("/webhooks", json={**body, "events": ["user.created"], "secret": "x"})
    assert extra.status_code == 422  # a secret is never chosen by the caller


def test_the_secret_is_shown_once_and_never_listed(manager: TestClient) -> None:
    created = subscribe(manager, "http://127.0.0.1:9/hooks", "user.created", description="CRM")
    assert set(created) == {"id", "url", "events", "description", "created_at", "secret"}
    secret = created["secret"]
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]+=*", secret)
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    second = subscribe(manager, "http://127.0.0.1:9/other", *TYPES)
    assert second["secret"] != secret

    listed = manager.get("/webhooks").json()
    one = manager.get(f"/webhooks/{created['id']}").json()
    assert [w["id"] for w in listed["items"]] == [created["id"], second["id"]]
    assert one == listed["items"][0]
    assert one["enabled"] is True
    assert one["description"] == "CRM"
    rotated = manager.post(f"/webhooks/{created['id']}/rotate-secret").json()
    for text in (str(listed), str(one), manager.get("/audit").text):
        assert secret not in text
        assert rotated["secret"] not in text
        assert second["secret"] not in text
    assert rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != secret

    page = manager.get("/webhooks", params={"limit": 1}).json()
    assert [w["id"] for w in page["items"]] == [created["id"]]
    rest = manager.get("/webhooks", params={"limit": 1, "after": page["next_cursor"]}).json()
    assert [w["id"] for w in rest["items"]] == [second["id"]]
    assert rest["next_cursor"] is None


def test_change_and_delete(manager: TestClient) -> None:
    created = subscribe(manager, "http://127.0.0.1:9/hooks", "user.created")
    path = f"/webhooks/{created['id']}"
    changed = manager.patch(path, json={"events": ["user.deleted"], "enabled": False})
    assert changed.status_code == 200, changed.text
    assert changed.json()["events"] == ["user.deleted"]
    assert changed.json()["enabled"] is False
    assert manager.get(path).json() == changed.json()
    assert manager.patch(path, json={"url": "https://10.1.2.3/"}).status_code == 422
    assert manager.patch(path, json={"events": ["nope"]}).status_code == 422
    assert manager.get(path).json()["url"] == created["url"]

    assert manager.delete(path).status_code == 204
    for method in ("GET", "DELETE", "PATCH"):
        missing = manager.request(method, path, json={"enabled": True})
        assert missing.status_code == 404, method
        assert missing.headers["content-type"] == "application/problem+json"
    assert manager.post(f"{path}/rotate-secret").status_code == 404
    assert manager.get(f"{path}/deliveries").status_code == 404
    assert manager.post(f"{path}/deliveries/msg_x/retry").status_code == 404
    kinds = [e["kind"] for e in manager.get("/audit").json()["items"]]
    assert kinds.count("webhook.created") == 1
    assert "webhook.deleted" in kinds
