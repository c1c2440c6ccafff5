"""Second factors through HTTP on a live server: an authenticator app's codes (from pyotp),
recovery codes, the second step of a sign-in and its throttle, operators held to a second
factor, and what an attacker would send instead."""

import asyncio
import os
import re
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx2
import jwt
import pyotp
import pytest
from fastapi.testclient import TestClient

from tests.accounts.conftest import PASSWORD, bearer, link_token, mails_to
from tests.smtp import SmtpServer
from tests.support import CLI, Server, run_sql
from user_service.config import get_settings
from user_service.main import get_app

# Operators held to a second factor: the default, which the other tests turn off.
SETTINGS = {"AUTH_ADDRESS_LIMIT_PER_MINUTE": "1000", "AUTH_OPERATOR_MFA": "required"}


@pytest.fixture(scope="module")
def mail() -> Iterator[SmtpServer]:
    with SmtpServer() as smtp:
        yield smtp


@pytest.fixture(scope="module")
def live(mail: SmtpServer, database_url: str) -> Iterator[Server]:
    env = {**os.environ, **mail.env(), **SETTINGS}
    with Server("--workers", "2", env=env) as server:
        yield server


@pytest.fixture(scope="module")
def app(mail: SmtpServer) -> Iterator[TestClient]:
    """The same app in this process, so that coverage sees the code the server's workers run
    (they end by a signal, before coverage can save)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**mail.env(), **SETTINGS}.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        with TestClient(get_app()) as client:
            yield client
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _no_earlier_mail(mail: SmtpServer) -> None:
    # Each test counts its own emails, and the module's tests use the same addresses twice.
    mail.clear()


@pytest.fixture(params=["live", "in-process"])
def client(
    request: pytest.FixtureRequest, live: Server, app: TestClient
) -> Iterator[httpx2.Client]:
    if request.param == "in-process":
        yield app
        return
    with httpx2.Client(base_url=live.url) as client:
        yield client


def sign_up(client: httpx2.Client, mail: SmtpServer, email: str) -> dict[str, Any]:
    body = {"email": email, "password": PASSWORD, "name": "Two Factors"}
    assert client.post("/auth/register", json=body).status_code == 202
    token = link_token(mails_to(mail, email)[0])
    assert client.post("/auth/verify", json={"token": token}).status_code == 200
    pair: dict[str, Any] = log_in(client, email).json()
    return pair


def log_in(client: httpx2.Client, email: str, password: str = PASSWORD) -> httpx2.Response:
    return client.post("/auth/login", data={"username": email, "password": password})


def enrol(client: httpx2.Client, pair: dict[str, Any]) -> tuple[pyotp.TOTP, list[str]]:
    """Set up an authenticator app: it, and the recovery codes."""
    started = client.post("/users/me/mfa/totp", json={"password": PASSWORD}, headers=bearer(pair))
    assert started.status_code == 201, started.text
    totp = pyotp.TOTP(started.json()["secret"])
    confirmed = client.post(
        "/users/me/mfa/totp/confirm", json={"code": totp.now()}, headers=bearer(pair)
    )
    assert confirmed.status_code == 200, confirmed.text
    return totp, confirmed.json()["recovery_codes"]


def next_code(totp: pyotp.TOTP) -> str:
    """A code of the next time step: one the last accepted step has not used (one step
    either way of now is accepted)."""
    return totp.at(time.time() + totp.interval)


def challenge(client: httpx2.Client, email: str) -> str:
    """The mfa_token of a sign-in with the right password."""
    answer = log_in(client, email)
    assert answer.status_code == 401, answer.text
    token: str = answer.json()["mfa_token"]
    return token


def amr(pair: dict[str, Any]) -> list[str]:
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    found: list[str] = claims["amr"]
    return found


def test_an_authenticator_app_is_set_up_and_then_asked_for_after_the_password(
    client: httpx2.Client, mail: SmtpServer, database_url: str
) -> None:
    pair = sign_up(client, mail, "totp@example.com")
    me = bearer(pair)
    wrong = client.post("/users/me/mfa/totp", json={"password": "not my password"}, headers=me)
    assert wrong.status_code == 403
    nothing = client.post("/users/me/mfa/totp/confirm", json={"code": "123456"}, headers=me)
    assert nothing.status_code == 409
    assert nothing.json()["type"] == "/problems/nothing-pending"

    started = client.post("/users/me/mfa/totp", json={"password": PASSWORD}, headers=me)
    assert started.status_code == 201
    uri = started.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/127.0.0.1:totp%40example.com?secret=")
    assert "issuer=127.0.0.1" in uri
    totp = pyotp.TOTP(started.json()["secret"])
    assert client.get("/users/me/mfa", headers=me).json()["totp"] is False  # pending
    wrong_code = str((int(totp.now()) + 1) % 1_000_000).zfill(6)
    refused = client.post("/users/me/mfa/totp/confirm", json={"code": wrong_code}, headers=me)
    assert refused.status_code == 401
    confirmed = client.post("/users/me/mfa/totp/confirm", json={"code": totp.now()}, headers=me)
    codes = confirmed.json()["recovery_codes"]
    assert len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", code) for code in codes)
    assert client.get("/users/me/mfa", headers=me).json() == {
        "totp": True,
        "recovery_codes_left": 10,
        "passkeys": [],
    }
    notice = mails_to(mail, "totp@example.com", 2)[-1]
    assert notice["Subject"] == "Your sign-in changed"
    stored = str(run_sql(database_url, "SELECT * FROM totp_secrets"))
    stored += str(run_sql(database_url, "SELECT * FROM recovery_codes"))
    for secret in (started.json()["secret"], *codes):  # encrypted, and hashed
        assert secret not in stored
        assert secret.encode().hex() not in stored

    signing_in = log_in(client, "totp@example.com")
    assert signing_in.status_code == 401
    problem = signing_in.json()
    assert problem["type"].endswith("/mfa-required")
    assert problem["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in problem
    second = client.post(
        "/auth/mfa", json={"mfa_token": problem["mfa_token"], "code": next_code(totp)}
    )
    assert second.status_code == 200, second.text
    assert amr(second.json()) == ["pwd", "otp", "mfa"]
    sessions = client.get("/auth/sessions", headers=bearer(second.json())).json()
    assert [session["amr"] for session in sessions] == [["pwd"], ["pwd", "otp", "mfa"]]
    refreshed = client.post("/auth/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert amr(refreshed.json()) == ["pwd", "otp", "mfa"]  # a refresh keeps how

    # The token is spent; the code too, with a fresh token (RFC 6238 §5.2).
    spent = client.post("/auth/mfa", json={"mfa_token": problem["mfa_token"], "code": "000000"})
    assert spent.json()["type"] == "/problems/invalid-mfa-token"
    replayed = client.post(
        "/auth/mfa",
        json={"mfa_token": challenge(client, "totp@example.com"), "code": next_code(totp)},
    )
    assert replayed.status_code == 401
    assert replayed.json()["type"] == "/problems/wrong-code"

    recovered = client.post(
        "/auth/mfa",
        json={"mfa_token": challenge(client, "totp@example.com"), "recovery_code": codes[0]},
    )
    assert recovered.status_code == 200
    again = client.post(
        "/auth/mfa",
        json={"mfa_token": challenge(client, "totp@example.com"), "recovery_code": codes[0]},
    )
    assert again.status_code == 401
    spelt = codes[1].upper().replace("-", " ")  # as typed from paper
    typed = client.post(
        "/auth/mfa",
        json={"mfa_token": challenge(client, "totp@example.com"), "recovery_code": spelt},
    )
    assert typed.status_code == 200
    assert client.get("/users/me/mfa", headers=me).json()["recovery_codes_left"] == 8


def test_a_wrong_password_says_nothing_of_a_second_factor(
    client: httpx2.Client, mail: SmtpServer
) -> None:
    enrol(client, sign_up(client, mail, "secret-factor@example.com"))
    sign_up(client, mail, "no-factor@example.com")
    answers = [
        log_in(client, email, "a wrong password")
        for email in ("secret-factor@example.com", "no-factor@example.com")
    ]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].content == answers[1].content


def test_wrong_second_steps_are_counted_across_fresh_tokens_then_wait(
    client: httpx2.Client, mail: SmtpServer
) -> None:
    totp, _ = enrol(client, sign_up(client, mail, "guessed@example.com"))
    wrong = str((int(totp.now()) + 500_000) % 1_000_000).zfill(6)
    for _ in range(5):  # each with a fresh mfa_token: a new challenge resets nothing
        answer = client.post(
            "/auth/mfa", json={"mfa_token": challenge(client, "guessed@example.com"), "code": wrong}
        )
        assert answer.status_code == 401
    blocked = client.post(
        "/auth/mfa",
        json={"mfa_token": challenge(client, "guessed@example.com"), "code": next_code(totp)},
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) >= 1


def test_one_code_sent_twice_at_once_signs_in_once(
    live: Server, client: httpx2.Client, mail: SmtpServer
) -> None:
    totp, _ = enrol(client, sign_up(client, mail, "racer@example.com"))
    tokens = [challenge(client, "racer@example.com") for _ in range(2)]
    code = next_code(totp)

    async def race() -> list[int]:
        async with httpx2.AsyncClient(base_url=live.url) as racing:
            answers = await asyncio.gather(
                *(racing.post("/auth/mfa", json={"mfa_token": t, "code": code}) for t in tokens)
            )
        return sorted(answer.status_code for answer in answers)

    assert asyncio.run(race()) == [200, 401]


def test_new_recovery_codes_and_turning_the_app_off_need_the_password_and_a_code(
    client: httpx2.Client, mail: SmtpServer
) -> None:
    pair = sign_up(client, mail, "off@example.com")
    me = bearer(pair)
    totp, old = enrol(client, pair)
    without_code = client.post(
        "/users/me/mfa/recovery-codes", json={"password": PASSWORD}, headers=me
    )
    assert without_code.status_code == 422
    renewed = client.post(
        "/users/me/mfa/recovery-codes",
        json={"password": PASSWORD, "code": next_code(totp)},
        headers=me,
    )
    assert renewed.status_code == 200
    new = renewed.json()["recovery_codes"]
    assert not set(new) & set(old)
    dead = client.post(
        "/auth/mfa",
        json={"mfa_token": challenge(client, "off@example.com"), "recovery_code": old[0]},
    )
    assert dead.status_code == 401

    wrong = client.request(
        "DELETE",
        "/users/me/mfa/totp",
        json={"password": "wrong password!", "recovery_code": new[0]},
        headers=me,
    )
    assert wrong.status_code == 403
    off = client.request(
        "DELETE",
        "/users/me/mfa/totp",
        json={"password": PASSWORD, "recovery_code": new[0]},
        headers=me,
    )
    assert off.status_code == 204
    assert client.get("/users/me/mfa", headers=me).json()["totp"] is False
    assert log_in(client, "off@example.com").status_code == 200  # the password alone again
    subjects = [m["Subject"] for m in mails_to(mail, "off@example.com", 3)]
    assert subjects.count("Your sign-in changed") == 2  # set up, turned off


def test_a_password_reset_keeps_the_second_factor(client: httpx2.Client, mail: SmtpServer) -> None:
    enrol(client, sign_up(client, mail, "reset-mfa@example.com"))
    client.post("/auth/forgot-password", json={"email": "reset-mfa@example.com"})
    reset = [
        m
        for m in mails_to(mail, "reset-mfa@example.com", 3)
        if m["Subject"] == "Reset your password"
    ]
    new_password = "a brand new passphrase for this"
    answer = client.post(
        "/auth/reset-password", json={"token": link_token(reset[-1]), "password": new_password}
    )
    assert answer.status_code == 200
    again = log_in(client, "reset-mfa@example.com", new_password)
    assert again.status_code == 401
    assert again.json()["type"].endswith("/mfa-required")


def test_operators_are_held_to_a_second_factor(
    live: Server, client: httpx2.Client, mail: SmtpServer
) -> None:
    sign_up(client, mail, "held@example.com")
    granted = subprocess.run(
        [CLI, "accounts", "grant", "held@example.com", "users:read"], capture_output=True, text=True
    )
    assert granted.returncode == 0, granted.stderr
    one_factor = log_in(client, "held@example.com").json()
    held = client.get("/users", headers=bearer(one_factor))
    assert held.status_code == 403
    assert held.json()["type"].endswith("/mfa-enrolment-required")
    assert client.get("/users/me", headers=bearer(one_factor)).status_code == 200  # self-service
    totp, _ = enrol(client, one_factor)
    two = client.post(
        "/auth/mfa",
        json={"mfa_token": challenge(client, "held@example.com"), "code": next_code(totp)},
    )
    assert client.get("/users", headers=bearer(two.json())).status_code == 200
    service = {"Authorization": f"Bearer {live.token()}"}
    assert client.get("/users", headers=service).status_code == 200  # services


def test_what_an_attacker_sends_instead_is_refused_and_stores_nothing(
    live: Server, client: httpx2.Client, mail: SmtpServer, database_url: str
) -> None:
    pair = sign_up(client, mail, "target@example.com")
    totp, _ = enrol(client, pair)
    token = challenge(client, "target@example.com")
    for body in (
        {"mfa_token": token, "code": "12ab56"},
        {"mfa_token": token, "code": "1234567"},
        {"mfa_token": token, "code": next_code(totp), "recovery_code": "aaaaa-bbbbb"},
        {"mfa_token": token},
    ):
        assert client.post("/auth/mfa", json=body).status_code == 422, body
    run_sql(database_url, "UPDATE sign_in_challenges SET expires_at = now() - interval '1 second'")
    expired = client.post("/auth/mfa", json={"mfa_token": token, "code": next_code(totp)})
    assert expired.status_code == 401
    assert expired.json()["type"] == "/problems/invalid-mfa-token"

    forged = {
        "id": "AAAA",
        "rawId": "AAAA",
        "type": "public-key",
        "response": {"clientDataJSON": "e30", "authenticatorData": "AAAA", "signature": "AAAA"},
    }
    options = client.post("/auth/passkey/options").json()
    refused = client.post(
        "/auth/passkey", json={"challenge_token": options["challenge_token"], "credential": forged}
    )
    assert refused.status_code == 400
    assert refused.json()["type"] == "/problems/invalid-passkey"
    made = client.post(
        "/users/me/mfa/passkey-options", json={"password": PASSWORD}, headers=bearer(pair)
    )
    forged_new = {**forged, "response": {"clientDataJSON": "e30", "attestationObject": "AAAA"}}
    kept = client.post(
        "/users/me/mfa/passkeys",
        json={
            "challenge_token": made.json()["challenge_token"],
            "name": "Mallory",
            "credential": forged_new,
        },
        headers=bearer(pair),
    )
    assert kept.status_code == 400
    assert run_sql(database_url, "SELECT count(*) FROM passkeys")[0][0] == 0
    assert client.get("/healthz").status_code == 200  # the process lives on
