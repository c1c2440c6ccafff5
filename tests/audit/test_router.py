"""GET /audit: the security events, who did them, from where, in which request."""

from fastapi.testclient import TestClient

from tests.accounts.conftest import PASSWORD, bearer, signed_up
from tests.smtp import SmtpServer
from tests.support import issue_token


def _events(app: TestClient, token: str, **query: str | int) -> list[dict[str, object]]:
    response = app.get("/audit", params=query, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    items: list[dict[str, object]] = response.json()["items"]
    return items


def test_sign_ins_password_changes_and_sessions_are_recorded(
    app: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    pair = signed_up(app, smtp, "audited@example.com")
    app.post("/auth/login", data={"username": "audited@example.com", "password": "wrong one!"})
    app.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "another passphrase"},
        headers=bearer(pair),
    )
    app.post("/auth/logout", headers=bearer(pair), params={})
    auditor = issue_token(database_url, "audit:read")

    events = _events(app, auditor, limit=100)
    kinds = [event["kind"] for event in events]
    assert kinds == [
        "account.registered",
        "email.verified",
        "signin.succeeded",
        "signin.failed",
        "password.changed",
        "session.revoked",
    ]
    user_id = events[0]["subject_user_id"]
    assert all(event["subject_user_id"] == user_id for event in events)
    assert events[0]["actor"] == "anonymous"
    assert events[4]["actor"] == f"user:{user_id}"
    assert all(event["client_address"] == "testclient" for event in events)
    assert all(event["request_id"] for event in events)
    assert [e["kind"] for e in _events(app, auditor, kind="signin.failed")] == ["signin.failed"]
    assert _events(app, auditor, user_id=int(str(user_id)) + 1) == []


def test_admin_changes_to_users_are_recorded_with_the_token_that_made_them(
    client: TestClient, database_url: str
) -> None:
    created = client.post("/users", json={"name": "before"}).json()
    client.patch(f"/users/{created['id']}", json={"name": "after"})
    client.delete(f"/users/{created['id']}")
    auditor = issue_token(database_url, "audit:read")

    events = _events(client, auditor)
    assert [event["kind"] for event in events] == ["user.created", "user.renamed", "user.deleted"]
    assert all(str(event["actor"]).startswith("token:test-") for event in events)
    assert all(event["subject_user_id"] == created["id"] for event in events)


def test_the_audit_log_is_paged_and_needs_its_scope(client: TestClient, database_url: str) -> None:
    for name in ("a", "b", "c"):
        client.post("/users", json={"name": name})
    auditor = issue_token(database_url, "audit:read")
    first = client.get(
        "/audit", params={"limit": 2}, headers={"Authorization": f"Bearer {auditor}"}
    )
    page = first.json()
    assert len(page["items"]) == 2
    rest = _events(client, auditor, after=page["next_cursor"])
    assert [e["id"] for e in page["items"] + rest] == sorted(e["id"] for e in page["items"] + rest)
    assert len(rest) == 1
    reader = issue_token(database_url, "users:read")
    refused = client.get("/audit", headers={"Authorization": f"Bearer {reader}"})
    assert refused.status_code == 403
