"""Every account flow end to end through HTTP, reading the emails a real SMTP server gets."""

from fastapi.testclient import TestClient

from tests.accounts.conftest import (
    PASSWORD,
    bearer,
    link_token,
    login,
    mails_to,
    register,
    signed_up,
    text_of,
)
from tests.smtp import SmtpServer
from tests.support import run_sql


def test_sign_up_verify_sign_in_and_read_my_account(app: TestClient, smtp: SmtpServer) -> None:
    register(app, "Alice@Example.com", "Alice")
    [verification] = mails_to(smtp, "Alice@Example.com")
    assert verification["Subject"] == "Verify your email address"
    assert verification.get_body(("html",)) is not None
    token = link_token(verification)
    assert f"/account/verify?token={token}" in text_of(verification)

    refused = app.post("/auth/login", data={"username": "alice@example.com", "password": PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/email-not-verified"

    assert app.post("/auth/verify", json={"token": token}).status_code == 200
    pair = login(app, "ALICE@example.COM")  # addresses compare case-insensitively
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == 15 * 60
    me = app.get("/users/me", headers=bearer(pair)).json()
    assert me["email"] == "Alice@Example.com"  # stored as given
    assert me["nickname"] == "Alice"
    assert me["email_verified"] is True


def test_a_verification_link_works_once_and_not_after_it_expires(
    app: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    register(app, "once@example.com")
    token = link_token(mails_to(smtp, "once@example.com")[0])
    assert app.post("/auth/verify", json={"token": token}).status_code == 200
    again = app.post("/auth/verify", json={"token": token})
    assert again.status_code == 400
    assert again.json()["type"] == "/problems/invalid-link"

    register(app, "late@example.com")
    late = link_token(mails_to(smtp, "late@example.com")[0])
    run_sql(database_url, "UPDATE account_tokens SET expires_at = now() - interval '1 second'")
    assert app.post("/auth/verify", json={"token": late}).status_code == 400
    forged = app.post("/auth/verify", json={"token": late[:-2] + "xx"})
    assert forged.status_code == 400


def test_only_the_hash_of_a_link_is_stored(
    app: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    register(app, "hash@example.com")
    token = link_token(mails_to(smtp, "hash@example.com")[0])
    assert len(token) >= 43  # 256 random bits, URL-safe
    dump = str(run_sql(database_url, "SELECT * FROM account_tokens"))
    dump += str(run_sql(database_url, "SELECT * FROM mail_outbox"))
    assert token not in dump


def test_resend_sends_a_new_link_and_the_old_one_stops_working(
    app: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    register(app, "resend@example.com")
    first = link_token(mails_to(smtp, "resend@example.com")[0])
    run_sql(database_url, "DELETE FROM throttles")  # a minute later
    response = app.post("/auth/verify/resend", json={"email": "resend@example.com"})
    assert response.status_code == 202
    second = link_token(mails_to(smtp, "resend@example.com", 2)[1])
    assert app.post("/auth/verify", json={"token": first}).status_code == 400
    assert app.post("/auth/verify", json={"token": second}).status_code == 200


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    app: TestClient, smtp: SmtpServer
) -> None:
    pair = signed_up(app, smtp, "refresh@example.com")
    renewed = app.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.status_code == 200
    new = renewed.json()
    assert new["refresh_token"] != pair["refresh_token"]
    assert app.get("/users/me", headers=bearer(new)).status_code == 200

    replay = app.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401
    assert replay.json()["type"] == "/problems/refresh-token-reused"
    # The whole session ends: the thief's and the owner's newest tokens alike.
    assert (
        app.post("/auth/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401
    )
    assert app.get("/users/me", headers=bearer(new)).status_code == 401


def test_logout_ends_the_session(app: TestClient, smtp: SmtpServer) -> None:
    pair = signed_up(app, smtp, "logout@example.com")
    assert app.post("/auth/logout", headers=bearer(pair)).status_code == 204
    assert app.get("/users/me", headers=bearer(pair)).status_code == 401
    refused = app.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refused.status_code == 401
    assert refused.json()["type"] == "/problems/invalid-refresh-token"


def test_sessions_are_listed_and_one_can_be_ended_but_not_someone_elses(
    app: TestClient, smtp: SmtpServer
) -> None:
    phone = signed_up(app, smtp, "two@example.com")
    laptop = login(app, "two@example.com", **{"User-Agent": "laptop"})
    sessions = app.get("/auth/sessions", headers=bearer(phone)).json()
    assert len(sessions) == 2
    assert [s["current"] for s in sessions] == [True, False]
    assert sessions[1]["user_agent"] == "laptop"
    assert {"id", "created_at", "last_used_at", "client_address"} <= sessions[0].keys()

    stranger = signed_up(app, smtp, "stranger@example.com", "Stranger")
    other = app.delete(f"/auth/sessions/{sessions[1]['id']}", headers=bearer(stranger))
    assert other.status_code == 404

    assert (
        app.delete(f"/auth/sessions/{sessions[1]['id']}", headers=bearer(phone)).status_code == 204
    )
    assert app.get("/users/me", headers=bearer(laptop)).status_code == 401
    assert app.get("/users/me", headers=bearer(phone)).status_code == 200


def test_forgot_and_reset_password(app: TestClient, smtp: SmtpServer) -> None:
    pair = signed_up(app, smtp, "reset@example.com")
    assert app.post("/auth/forgot-password", json={"email": "reset@example.com"}).status_code == 202
    reset = mails_to(smtp, "reset@example.com", 2)[1]
    assert reset["Subject"] == "Reset your password"
    token = link_token(reset)
    assert "/account/reset-password?token=" in text_of(reset)

    new_password = "a new and better passphrase"
    response = app.post("/auth/reset-password", json={"token": token, "password": new_password})
    assert response.status_code == 200
    assert "access_token" not in response.text  # not signed in by it
    assert mails_to(smtp, "reset@example.com", 3)[2]["Subject"] == "Your password was changed"
    again = app.post("/auth/reset-password", json={"token": token, "password": "yet another one!!"})
    assert again.status_code == 400

    assert app.get("/users/me", headers=bearer(pair)).status_code == 401  # every session ended
    failed = app.post("/auth/login", data={"username": "reset@example.com", "password": PASSWORD})
    assert failed.status_code == 401
    login(app, "reset@example.com", new_password)


def test_a_refused_new_password_does_not_use_up_the_reset_link(
    app: TestClient, smtp: SmtpServer
) -> None:
    signed_up(app, smtp, "keep@example.com")
    app.post("/auth/forgot-password", json={"email": "keep@example.com"})
    token = link_token(mails_to(smtp, "keep@example.com", 2)[1])
    weak = app.post("/auth/reset-password", json={"token": token, "password": "qwerty123456"})
    assert weak.status_code == 422
    good = app.post(
        "/auth/reset-password", json={"token": token, "password": "fine and long enough"}
    )
    assert good.status_code == 200


def test_change_my_name_password_and_email(app: TestClient, smtp: SmtpServer) -> None:
    pair = signed_up(app, smtp, "me@example.com", "Me")
    other = login(app, "me@example.com")

    renamed = app.patch("/users/me", json={"name": "Still me"}, headers=bearer(pair))
    assert renamed.json()["nickname"] == "Still me"

    wrong = app.post(
        "/users/me/password",
        json={"current_password": "not my password", "new_password": "a brand new passphrase"},
        headers=bearer(pair),
    )
    assert wrong.status_code == 403
    changed = app.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(pair),
    )
    assert changed.status_code == 204
    assert app.get("/users/me", headers=bearer(other)).status_code == 401  # other sessions end
    assert app.get("/users/me", headers=bearer(pair)).status_code == 200  # this one stays

    moved = app.post(
        "/users/me/email",
        json={"current_password": "a brand new passphrase", "email": "new@example.com"},
        headers=bearer(pair),
    )
    assert moved.status_code == 202
    notice = mails_to(smtp, "me@example.com", 3)[-1]
    assert "new@example.com" in text_of(notice)
    assert "token=" not in text_of(notice)
    assert app.get("/users/me", headers=bearer(pair)).json()["email"] == "me@example.com"
    token = link_token(mails_to(smtp, "new@example.com")[0])
    assert app.post("/auth/verify", json={"token": token}).status_code == 200
    assert app.get("/users/me", headers=bearer(pair)).json()["email"] == "new@example.com"
    login(app, "new@example.com", "a brand new passphrase")


def test_delete_my_account_needs_my_password(app: TestClient, smtp: SmtpServer) -> None:
    pair = signed_up(app, smtp, "bye@example.com")
    refused = app.request(
        "DELETE", "/users/me", json={"current_password": "wrong password!"}, headers=bearer(pair)
    )
    assert refused.status_code == 403
    gone = app.request(
        "DELETE", "/users/me", json={"current_password": PASSWORD}, headers=bearer(pair)
    )
    assert gone.status_code == 204
    assert app.get("/users/me", headers=bearer(pair)).status_code == 401
    failed = app.post("/auth/login", data={"username": "bye@example.com", "password": PASSWORD})
    assert failed.status_code == 401
    register(app, "bye@example.com")  # the address is free again
