"""Accounts as an attacker tries them: enumeration by answer and by time, guessing, forged
and replayed tokens, races, and secrets where they must never be."""

import asyncio
import json
import statistics
import subprocess
import time

import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from tests.accounts.conftest import (
    PASSWORD,
    bearer,
    link_token,
    login,
    mails_to,
    register,
    signed_up,
)
from tests.smtp import SmtpServer
from tests.support import CLI, run_sql
from user_service import database
from user_service.accounts.errors import NotPermittedError
from user_service.accounts.service import Accounts
from user_service.config import get_settings
from user_service.context import CLI as COMMAND_LINE
from user_service.context import Context
from user_service.crypto import Cipher, secret_key
from user_service.mail import Sender
from user_service.main import get_app

# Headers that differ between any two responses, whatever they answer.
_PER_RESPONSE = {"date", "x-request-id"}


def _same(first: httpx2.Response, second: httpx2.Response) -> None:
    assert first.status_code == second.status_code
    assert first.content == second.content
    assert _headers(first) == _headers(second)


def _headers(response: httpx2.Response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k not in _PER_RESPONSE}


def test_register_forgot_and_resend_answer_alike_for_known_and_unknown_addresses(
    app: TestClient, smtp: SmtpServer
) -> None:
    signed_up(app, smtp, "known@example.com")
    body = {"password": PASSWORD, "name": "Someone"}
    _same(
        app.post("/auth/register", json={"email": "known@example.com", **body}),
        app.post("/auth/register", json={"email": "unknown@example.com", **body}),
    )
    # The owner of the known address learns of the attempt; nobody else does.
    notice = mails_to(smtp, "known@example.com", 2)[1]
    assert notice["Subject"] == "Someone tried to sign up with your email address"
    for path in ("/auth/forgot-password", "/auth/verify/resend"):
        _same(
            app.post(path, json={"email": "known@example.com"}),
            app.post(path, json={"email": "nobody@example.com"}),
        )


def test_wrong_password_and_unknown_email_get_the_same_401_in_about_the_same_time(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer, database_url: str
) -> None:
    # The production cost, so that hashing is what would show.
    monkeypatch.delenv("AUTH_ARGON2_MEMORY_KIB")
    monkeypatch.delenv("AUTH_ARGON2_TIME_COST")
    get_settings.cache_clear()
    with TestClient(get_app()) as app:
        signed_up(app, smtp, "timing@example.com")
        timings: dict[str, list[float]] = {"timing@example.com": [], "ghost@example.com": []}
        answers = {}
        for _ in range(16):  # alternating, so that a stall of the machine hits both alike
            for email, spent in timings.items():
                start = time.perf_counter()
                answer = app.post("/auth/login", data={"username": email, "password": "x" * 12})
                spent.append(time.perf_counter() - start)
                answers[email] = answer
            run_sql(database_url, "DELETE FROM throttles")  # no waits: time the hashing
    wrong, unknown = (statistics.median(spent) for spent in timings.values())
    assert 0.5 < wrong / unknown < 2, timings
    _same(*answers.values())
    assert answers["ghost@example.com"].json()["type"] == "/problems/invalid-credentials"


def test_passwords_are_hashed_with_argon2id_at_the_production_cost_and_rehashed_on_sign_in(
    monkeypatch: pytest.MonkeyPatch, app: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    signed_up(app, smtp, "cost@example.com")
    [cheap] = run_sql(database_url, "SELECT password_hash FROM accounts")
    assert cheap[0].startswith("$argon2id$v=19$m=1024,t=1,p=1$")  # the tests' cost
    monkeypatch.delenv("AUTH_ARGON2_MEMORY_KIB")
    monkeypatch.delenv("AUTH_ARGON2_TIME_COST")
    get_settings.cache_clear()
    with TestClient(get_app()) as production:
        login(production, "cost@example.com")
    [rehashed] = run_sql(database_url, "SELECT password_hash FROM accounts")
    assert rehashed[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")  # OWASP's minimum
    assert PASSWORD not in rehashed[0]


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short pass", "at least 12 characters"),
        ("qwerty123456", "10,000 most common passwords"),
        ("QWERTY123456", "10,000 most common passwords"),
        ("my name is rules@example", "must not contain the email address"),
        ("Sandra Bullock forever", "must not contain your name"),
        ("x" * 257, "at most 256 characters"),
        ("\ud800 lone surrogate!", "unicode string"),
    ],
)
def test_a_weak_password_is_refused_with_the_reason(
    app: TestClient, password: str, why: str
) -> None:
    body = json.dumps(
        {"email": "rules@example.com", "password": password, "name": "Sandra Bullock"}
    )
    response = app.post(
        "/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "password"]
    assert why in response.json()["errors"][0]["msg"]


def test_any_characters_are_allowed_in_a_password_and_none_is_dropped(
    app: TestClient, smtp: SmtpServer
) -> None:
    password = "  ünïcødé ✓ pass phrase 🔑  "
    register(app, "chars@example.com", password=password)
    token = link_token(mails_to(smtp, "chars@example.com")[0])
    app.post("/auth/verify", json={"token": token})
    login(app, "chars@example.com", password)
    trimmed = app.post(
        "/auth/login", data={"username": "chars@example.com", "password": password.strip()}
    )
    assert trimmed.status_code == 401


def test_after_five_failures_each_sign_in_waits_longer_known_account_or_not(
    app: TestClient, smtp: SmtpServer, database_url: str
) -> None:
    signed_up(app, smtp, "guess@example.com")
    for email in ("guess@example.com", "nobody@example.com"):
        for _ in range(5):
            failed = app.post("/auth/login", data={"username": email, "password": "wrong guess!"})
            assert failed.status_code == 401
        blocked = app.post("/auth/login", data={"username": email, "password": PASSWORD})
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) >= 1
    wait_over = (  # rather than sleeping
        "UPDATE throttles SET blocked_until = now() WHERE key = 'signin:guess@example.com'"
    )
    run_sql(database_url, wait_over)
    login(app, "guess@example.com")  # the right password works again, and clears the count
    waits = []
    for _ in range(2):
        while (
            app.post(
                "/auth/login", data={"username": "guess@example.com", "password": "no!"}
            ).status_code
            == 401
        ):
            pass
        # The wait each failure set, to the microsecond: window_start is its time.
        waits.append(
            run_sql(
                database_url,
                "SELECT extract(epoch FROM blocked_until - window_start) FROM throttles "
                "WHERE key = 'signin:guess@example.com'",
            )[0][0]
        )
        run_sql(database_url, wait_over)
    assert waits == [2, 4]  # the next failure after a wait waits twice as long


def test_a_password_reset_clears_the_sign_in_wait(app: TestClient, smtp: SmtpServer) -> None:
    signed_up(app, smtp, "locked@example.com")
    for _ in range(6):
        app.post("/auth/login", data={"username": "locked@example.com", "password": "wrong!!"})
    app.post("/auth/forgot-password", json={"email": "locked@example.com"})
    token = link_token(mails_to(smtp, "locked@example.com", 2)[1])
    app.post("/auth/reset-password", json={"token": token, "password": "a fresh passphrase"})
    login(app, "locked@example.com", "a fresh passphrase")


def test_each_address_gets_a_limited_number_of_requests_a_minute(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> None:
    # (After smtp, whose own limit is high for the other tests.)
    monkeypatch.setenv("AUTH_ADDRESS_LIMIT_PER_MINUTE", "3")
    get_settings.cache_clear()
    with TestClient(get_app()) as app:
        for path, body in (
            ("/auth/forgot-password", {"email": "a@example.com"}),
            ("/auth/verify/resend", {"email": "a@example.com"}),
        ):
            answers = [app.post(path, json=body).status_code for _ in range(4)]
            assert answers == [202, 202, 202, 429]
        logins = [
            app.post("/auth/login", data={"username": f"{i}@example.com", "password": "x" * 12})
            for i in range(4)
        ]
        assert [r.status_code for r in logins] == [401, 401, 401, 429]
        assert 0 < int(logins[-1].headers["Retry-After"]) <= 60


def test_at_most_one_email_of_a_kind_per_address_per_minute(
    app: TestClient, smtp: SmtpServer
) -> None:
    signed_up(app, smtp, "bombed@example.com")
    for _ in range(3):
        assert (
            app.post("/auth/forgot-password", json={"email": "bombed@example.com"}).status_code
            == 202
        )
    time.sleep(0.5)
    assert len(mails_to(smtp, "bombed@example.com", 2)) == 2  # the verification, one reset


def test_a_persons_token_grants_self_service_only_until_scopes_are_granted(
    app: TestClient, smtp: SmtpServer, token: str
) -> None:
    pair = signed_up(app, smtp, "operator@example.com")
    assert app.get("/users", headers=bearer(pair)).status_code == 403
    api = app.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 403
    assert api.json()["type"] == "/problems/not-a-person"

    granted = subprocess.run(
        [CLI, "accounts", "grant", "OPERATOR@example.com", "users:read"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert granted.returncode == 0, granted.stderr
    assert app.get("/users", headers=bearer(pair)).status_code == 403  # this token: as issued
    operator = login(app, "operator@example.com")
    listed = app.get("/users", headers=bearer(operator))
    assert listed.status_code == 200
    assert listed.json()["items"][0]["email"] == "operator@example.com"
    assert app.post("/users", json={"name": "x"}, headers=bearer(operator)).status_code == 403

    subprocess.run(
        [CLI, "accounts", "revoke-scope", "operator@example.com", "users:read"], check=True
    )
    assert app.get("/users", headers=bearer(operator)).status_code == 403  # at once
    unknown = subprocess.run(
        [CLI, "accounts", "grant", "operator@example.com", "users:fly"],
        capture_output=True,
        text=True,
    )
    assert unknown.returncode != 0
    assert "unknown scope users:fly" in unknown.stderr


def test_access_tokens_verify_offline_with_the_published_keys_across_a_rotation(
    app: TestClient, smtp: SmtpServer
) -> None:
    pair = signed_up(app, smtp, "jwks@example.com")
    keys = app.get("/.well-known/jwks.json").json()["keys"]
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "EdDSA"
    [key] = [k for k in keys if k["kid"] == header["kid"]]
    assert "d" not in key  # no private part
    claims = jwt.decode(
        pair["access_token"],
        jwt.PyJWK(key).key,
        algorithms=["EdDSA"],
        audience="user-service",
        issuer="http://127.0.0.1:8000",
    )
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert {"sub", "sid", "scope"} <= claims.keys()

    subprocess.run([CLI, "keys", "rotate"], check=True, capture_output=True)
    with TestClient(get_app()) as restarted:
        rotated = login(restarted, "jwks@example.com")
        assert jwt.get_unverified_header(rotated["access_token"])["kid"] != header["kid"]
        # An Ed25519 key (access tokens) and an RSA one (ID tokens), each time.
        assert len(restarted.get("/.well-known/jwks.json").json()["keys"]) == 4
        assert restarted.get("/users/me", headers=bearer(pair)).status_code == 200  # still valid
        assert restarted.get("/users/me", headers=bearer(rotated)).status_code == 200


def _forgeries(token: str, public_jwk: dict[str, str]) -> dict[str, str]:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    head, _, signature = token.split(".")
    stranger = Ed25519PrivateKey.generate()
    tampered = jwt.encode(
        {**claims, "scope": "users:write"}, stranger, "EdDSA", headers={"kid": header["kid"]}
    )
    return {
        "tampered claims": f"{head}.{tampered.split('.')[1]}.{signature}",
        "signed by another key": tampered,
        "alg none": jwt.encode(
            {**claims, "scope": "users:write"}, "", "none", headers={"kid": header["kid"]}
        ),
        "HS256 with the public key": jwt.encode(
            claims, public_jwk["x"].encode(), "HS256", headers={"kid": header["kid"]}
        ),
        "unknown kid": jwt.encode(claims, stranger, "EdDSA", headers={"kid": "nope"}),
        "truncated": token[:-5],
    }


def test_forged_access_tokens_are_refused(app: TestClient, smtp: SmtpServer) -> None:
    pair = signed_up(app, smtp, "forge@example.com")
    keys = app.get("/.well-known/jwks.json").json()["keys"]
    [public] = [key for key in keys if key["alg"] == "EdDSA"]
    for what, forged in _forgeries(pair["access_token"], public).items():
        response = app.get("/users/me", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401, what


def test_an_expired_access_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer
) -> None:
    monkeypatch.setenv("AUTH_ACCESS_TTL", "1")
    get_settings.cache_clear()
    with TestClient(get_app()) as app:
        pair = signed_up(app, smtp, "expired@example.com")
        assert pair["expires_in"] == 1
        time.sleep(2.1)
        response = app.get("/users/me", headers=bearer(pair))
        assert response.status_code == 401
        assert "expired" in response.json()["detail"]


def test_keys_under_another_secret_key_are_reported_and_a_rotation_recovers(
    monkeypatch: pytest.MonkeyPatch,
    app: TestClient,
    smtp: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signed_up(app, smtp, "moved@example.com")  # the first key, under the tests' secret key
    monkeypatch.setenv("AUTH_SECRET_KEY", "another secret key")
    get_settings.cache_clear()
    with TestClient(get_app(), raise_server_exceptions=False) as moved:
        form = {"username": "moved@example.com", "password": PASSWORD}
        assert moved.post("/auth/login", data=form).status_code == 500
        assert "run `user-service keys rotate`" in caplog.text
        rotated = subprocess.run([CLI, "keys", "rotate"], capture_output=True, text=True)
        assert rotated.returncode == 0, rotated.stderr
        with TestClient(get_app()) as restarted:
            login(restarted, "moved@example.com")


def test_every_spelling_of_an_address_counts_failures_on_one_account(
    app: TestClient, smtp: SmtpServer
) -> None:
    signed_up(app, smtp, "alice@example.com")
    assert login(app, "ALICE@Example.COM")["token_type"] == "bearer"  # one account
    # Upper case, and the domain in full-width letters (IDNA maps them): the same address.
    wide = "".join(chr(ord(letter) + 0xFEE0) for letter in "example")  # U+FF45…
    for spelling in ("alice@example.com", "ALICE@EXAMPLE.COM", f"Alice@{wide}.com") * 2:
        wrong = app.post("/auth/login", data={"username": spelling, "password": "wrong guess!"})
        assert wrong.status_code in (401, 429)
    for spelling in ("alice@example.com", "aLiCe@example.com", f"alice@{wide.upper()}.com"):
        locked = app.post("/auth/login", data={"username": spelling, "password": PASSWORD})
        assert locked.status_code == 429, spelling
    # U+0130 lower-cases to i and a combining dot (Python), not to i: another address, not a
    # way around the lockout of this one.
    other = app.post("/auth/login", data={"username": "alİce@example.com", "password": PASSWORD})
    assert other.status_code == 401
    assert other.json()["type"] == "/problems/invalid-credentials"


def test_one_reset_email_a_minute_however_the_address_is_spelt(
    app: TestClient, smtp: SmtpServer
) -> None:
    signed_up(app, smtp, "spelt@example.com")
    for spelling in ("spelt@example.com", "SPELT@EXAMPLE.COM", "Spelt@Example.Com"):
        assert app.post("/auth/forgot-password", json={"email": spelling}).status_code == 202
    time.sleep(0.5)
    assert len(mails_to(smtp, "spelt@example.com", 2)) == 2  # the verification, one reset


LOOKALIKES = [
    "ali\u200bce@example.com",  # a zero-width space inside
    "alice@example.com\u202e",  # a right-to-left override after
    "\ufeffalice@example.com",  # a byte-order mark before
    '"><svg/onload=alert(3)>@xss.example',  # markup, and a broken To: header
    '"alice smith"@example.com',  # a quoted local part
]


@pytest.mark.parametrize("address", LOOKALIKES)
def test_an_address_that_is_not_one_or_looks_like_another_is_refused(
    app: TestClient, smtp: SmtpServer, address: str
) -> None:
    body = json.dumps({"email": address, "password": PASSWORD, "name": "Mallory"})
    refused = app.post("/auth/register", content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "email"]
    pair = signed_up(app, smtp, "mover@example.com")
    moved = app.post(
        "/users/me/email",
        content=json.dumps({"current_password": PASSWORD, "email": address}),
        headers={"Content-Type": "application/json", **bearer(pair)},
    )
    assert moved.status_code == 422
    assert moved.json()["errors"][0]["loc"] == ["body", "email"]
    assert smtp.messages == mails_to(smtp, "mover@example.com")  # nothing sent elsewhere


def test_an_oversized_address_is_a_422_on_every_way_in_never_a_500(app: TestClient) -> None:
    huge = "a" * 3000 + "@example.com"
    login = app.post("/auth/login", data={"username": huge, "password": "x" * 12})
    assert login.status_code == 422
    assert login.json()["errors"][0]["loc"] == ["body", "username"]
    for path in ("/auth/forgot-password", "/auth/verify/resend"):
        answer = app.post(path, json={"email": huge})
        assert answer.status_code == 422, path
        assert answer.json()["errors"][0]["loc"] == ["body", "email"]
    long_password = app.post(
        "/auth/login", data={"username": "a@example.com", "password": "x" * 300}
    )
    assert long_password.status_code == 422


def test_a_reset_link_dies_when_the_password_changes(app: TestClient, smtp: SmtpServer) -> None:
    pair = signed_up(app, smtp, "stale@example.com")
    app.post("/auth/forgot-password", json={"email": "stale@example.com"})
    stale = link_token(mails_to(smtp, "stale@example.com", 2)[1])
    changed = app.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        headers=bearer(pair),
    )
    assert changed.status_code == 204
    reset = app.post(
        "/auth/reset-password", json={"token": stale, "password": "mine now, all mine"}
    )
    assert reset.status_code == 400
    assert reset.json()["type"] == "/problems/invalid-link"
    login(app, "stale@example.com", "a brand new passphrase")


def test_a_reset_link_mailed_to_an_old_address_dies_when_a_new_one_is_verified(
    app: TestClient, smtp: SmtpServer
) -> None:
    pair = signed_up(app, smtp, "old@example.com")
    app.post("/auth/forgot-password", json={"email": "old@example.com"})
    stale = link_token(mails_to(smtp, "old@example.com", 2)[1])  # in the old inbox
    moved = app.post(
        "/users/me/email",
        json={"current_password": PASSWORD, "email": "new@example.com"},
        headers=bearer(pair),
    )
    assert moved.status_code == 202
    verify = link_token(mails_to(smtp, "new@example.com")[0])
    assert app.post("/auth/verify", json={"token": verify}).status_code == 200
    reset = app.post(
        "/auth/reset-password", json={"token": stale, "password": "mine now, all mine"}
    )
    assert reset.status_code == 400
    login(app, "new@example.com")  # the password is as it was


def test_nobody_grants_or_takes_away_scopes_beyond_their_own(smtp: SmtpServer) -> None:
    """Scopes change from the CLI, which may do anything; the rule holds for any other
    caller of the accounts service."""

    async def scenario() -> list[str]:
        settings = get_settings()
        async with database.connect(settings) as db:
            cipher = Cipher(secret_key(settings))
            accounts = Accounts.build(db, settings, cipher, Sender(db, settings, cipher))
            plain = await accounts.invite(COMMAND_LINE, name="Plain", email="plain@example.com")
            boss = await accounts.invite(COMMAND_LINE, name="Boss", email="boss@example.com")
            await accounts.set_scopes(COMMAND_LINE, "boss@example.com", ["audit:read"], add=True)
            operator = Context("user:1", scopes=frozenset({"users:read", "users:write"}))
            outcomes = []
            for email, scopes, add in (
                ("plain@example.com", ["audit:read"], True),  # a scope it lacks
                ("boss@example.com", ["users:read"], True),  # an account holding more
                ("boss@example.com", ["audit:read"], False),
                ("plain@example.com", ["users:read"], True),  # within its own: fine
            ):
                try:
                    await accounts.set_scopes(operator, email, scopes, add=add)
                    outcomes.append("done")
                except NotPermittedError as exc:
                    outcomes.append(exc.detail)
            held = [await accounts.user(user_id) for user_id in (plain, boss)]
            return [*outcomes, *(str(user["scopes"]) for user in held)]

    assert asyncio.run(scenario()) == [
        "You may not grant scopes to this account without audit:read.",
        "You may not grant scopes to this account without audit:read.",
        "You may not take scopes from this account without audit:read.",
        "done",
        "['users:read']",
        "['audit:read']",
    ]
