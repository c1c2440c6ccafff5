"""Accounts on a live server (two workers, as deployed): races between parallel requests,
floods, outages of the mail server, and what reaches the log and the audit table."""

import asyncio
import os
import re
import statistics
import time
from collections.abc import Callable

import httpx2

from tests.accounts.conftest import PASSWORD, link_token, mails_to
from tests.smtp import SmtpServer
from tests.support import Server, bearer, run_sql


def _env(smtp: SmtpServer, **settings: str) -> dict[str, str]:
    return {**os.environ, **smtp.env(), "AUTH_ADDRESS_LIMIT_PER_MINUTE": "1000", **settings}


def _sign_up(client: httpx2.Client, smtp: SmtpServer, email: str) -> dict[str, str]:
    body = {"email": email, "password": PASSWORD, "name": "Live"}
    assert client.post("/auth/register", json=body).status_code == 202
    token = link_token(mails_to(smtp, email)[0])
    assert client.post("/auth/verify", json={"token": token}).status_code == 200
    signed_in = client.post("/auth/login", data={"username": email, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    pair: dict[str, str] = signed_in.json()
    return pair


def test_parallel_registrations_of_one_address_make_one_account(
    start_server: Callable[..., Server], database_url: str
) -> None:
    with SmtpServer() as smtp:
        live = start_server("--workers", "2", env=_env(smtp))

        async def register_all() -> list[int]:
            async with httpx2.AsyncClient(base_url=live.url) as client:
                body = {"password": PASSWORD, "name": "Racer"}
                # The same address, spelt two ways.
                emails = ("race@example.com", "Race@Example.COM") * 10
                answers = await asyncio.gather(
                    *(client.post("/auth/register", json={"email": e, **body}) for e in emails)
                )
                return [answer.status_code for answer in answers]

        assert asyncio.run(register_all()) == [202] * 20
        code, log = live.stop()  # the work after each answer is done once it has stopped
        assert code == 0, log
        assert run_sql(database_url, "SELECT count(*) FROM accounts")[0][0] == 1
        assert run_sql(database_url, "SELECT count(*) FROM users")[0][0] == 1  # no orphan


def test_register_and_forgot_answer_as_fast_for_known_and_unknown_addresses(
    start_server: Callable[..., Server],
) -> None:
    with SmtpServer() as smtp:
        live = start_server(env=_env(smtp))
        with httpx2.Client(base_url=live.url) as client:
            _sign_up(client, smtp, "known@example.com")

            def seconds(path: str, body: dict[str, str]) -> float:
                # The work a request leaves runs after its answer, on the same worker: let
                # it end, so that each answer's own time is what is compared.
                time.sleep(0.05)
                start = time.perf_counter()
                assert client.post(path, json=body).status_code == 202
                return time.perf_counter() - start

            spent: dict[str, list[float]] = {"known": [], "unknown": [], "taken": [], "new": []}
            for i in range(15):
                for which, email in (("known", "known@example.com"), ("unknown", f"u{i}@x.io")):
                    spent[which].append(seconds("/auth/forgot-password", {"email": email}))
                for which, email in (("taken", "known@example.com"), ("new", f"n{i}@x.io")):
                    body = {"email": email, "password": PASSWORD, "name": "Timed"}
                    spent[which].append(seconds("/auth/register", body))
    median = {which: statistics.median(times) for which, times in spent.items()}
    assert 0.5 < median["known"] / median["unknown"] < 2, spent
    assert 0.5 < median["taken"] / median["new"] < 2, spent


def test_racing_reuse_of_a_refresh_token_never_leaves_two_live_sessions(
    start_server: Callable[..., Server], database_url: str
) -> None:
    with SmtpServer() as smtp:
        live = start_server("--workers", "2", env=_env(smtp))
        with httpx2.Client(base_url=live.url) as client:
            pair = _sign_up(client, smtp, "race@example.com")

        async def refresh_all() -> list[httpx2.Response]:
            async with httpx2.AsyncClient(base_url=live.url) as client:
                body = {"refresh_token": pair["refresh_token"]}
                return await asyncio.gather(
                    *(client.post("/auth/refresh", json=body) for _ in range(10))
                )

        answers = asyncio.run(refresh_all())
        won = [answer.json() for answer in answers if answer.status_code == 200]
        assert len(won) <= 1
        assert all(answer.status_code in (200, 401) for answer in answers)
        live_sessions = run_sql(
            database_url, "SELECT count(*) FROM auth_sessions WHERE revoked_at IS NULL"
        )[0][0]
        assert live_sessions == 0  # the replay ended the session, the winner's tokens too
        with httpx2.Client(base_url=live.url) as client:
            for pair in won:
                again = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
                assert again.status_code == 401


def test_a_flood_of_sign_ins_gets_503s_not_unbounded_memory(
    start_server: Callable[..., Server],
) -> None:
    with SmtpServer() as smtp:
        live = start_server(
            "--workers",
            "1",
            env=_env(
                smtp, AUTH_HASH_CONCURRENCY="1", AUTH_HASH_QUEUE="2", AUTH_ARGON2_TIME_COST="20"
            ),
        )

        async def flood() -> list[httpx2.Response]:
            async with httpx2.AsyncClient(base_url=live.url, timeout=60) as client:
                form = {"username": "flood@example.com", "password": "not the password"}
                return await asyncio.gather(
                    *(client.post("/auth/login", data=form) for _ in range(20))
                )

        answers = asyncio.run(flood())
        statuses = sorted(answer.status_code for answer in answers)
        assert set(statuses) <= {401, 429, 503}, statuses
        busy = [answer for answer in answers if answer.status_code == 503]
        assert busy, statuses
        assert busy[0].headers["Retry-After"] == "1"
        with httpx2.Client(base_url=live.url) as client:
            assert client.get("/healthz").status_code == 200  # the process lives on


def test_mail_queued_while_the_smtp_server_is_down_arrives_once_it_is_up(
    start_server: Callable[..., Server],
) -> None:
    smtp = SmtpServer()  # not started: the port refuses connections
    try:
        live = start_server(env=_env(smtp))
        with httpx2.Client(base_url=live.url) as client:
            body = {"email": "patient@example.com", "password": PASSWORD, "name": "Patient"}
            assert client.post("/auth/register", json=body).status_code == 202
        smtp.start()
        [message] = smtp.wait_for(1, timeout=20)  # retried with backoff: 1, 2, 4 … s
        assert message["To"] == "patient@example.com"
    finally:
        smtp.stop()


def test_no_secret_reaches_the_log_a_response_or_the_audit_log(
    start_server: Callable[..., Server], database_url: str
) -> None:
    with SmtpServer() as smtp:
        live = start_server(env=_env(smtp, LOG_FORMAT="json", DB_ECHO="true"))
        secrets: list[str] = [PASSWORD, "a second passphrase"]
        bodies = []
        with httpx2.Client(base_url=live.url) as client:
            pair = _sign_up(client, smtp, "secret@example.com")
            secrets += [pair["access_token"], pair["refresh_token"]]
            secrets += [link_token(message) for message in smtp.messages]
            renewed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            secrets += [renewed.json()["refresh_token"]]
            changed = client.post(
                "/users/me/password",
                json={"current_password": PASSWORD, "new_password": "a second passphrase"},
                headers=bearer(renewed.json()["access_token"]),
            )
            assert changed.status_code == 204
            client.post("/auth/forgot-password", json={"email": "secret@example.com"})
            secrets += [
                link_token(m) for m in mails_to(smtp, "secret@example.com", 3) if "token=" in str(m)
            ]
            bodies += [
                client.post(
                    "/auth/login", data={"username": "secret@example.com", "password": PASSWORD}
                ).text,
                client.get("/auth/sessions", headers=bearer(renewed.json()["access_token"])).text,
                client.get("/audit", headers=bearer(live.token("audit:read"))).text,
            ]
        code, log = live.stop()
    assert code == 0, log
    stored = " ".join(
        str(run_sql(database_url, f"SELECT * FROM {table}"))  # noqa: S608 (our table names)
        for table in (
            "audit_events",
            "accounts",
            "account_tokens",
            "refresh_tokens",
            "mail_outbox",
            "signing_keys",
        )
    )
    for secret in secrets:
        assert secret not in log
        assert secret not in stored
        for body in bodies:
            assert secret not in body
    assert re.search(r"\$argon2id\$", stored)  # what is stored instead of the password
