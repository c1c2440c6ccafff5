"""Signing in through a company's identity provider, against a real one started here: panva's
oidc-provider (tests/upstream/idp, an OpenID Certified provider) with its development
sign-in pages, driven by Debian's Chromium. The service serves on localhost in this process;
the provider on 127.0.0.1, another site."""

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx2
import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.accounts.conftest import PASSWORD, mails_to
from tests.console.conftest import (
    fill_sign_in,
    on_localhost,
    sign_in,
    sign_out,
    sign_up,
)
from tests.smtp import SmtpServer
from tests.support import (
    CLI,
    ThreadServer,
    free_port,
    run_sql,
    run_with_connection,
    terminate,
)

IDP = Path(__file__).parent / "idp" / "app.mjs"
CLIENT_ID, CLIENT_SECRET = "user-service", "a-secret-the-provider-knows"


@pytest.fixture(scope="module")
def live(mail: SmtpServer, database_url: str) -> Iterator[ThreadServer]:
    """The service, with two providers: Acme (oidc-provider, running) and Down (nobody
    listens there)."""
    port, idp_port = free_port(), free_port()
    redirect = f"http://localhost:{port}/auth/providers/acme/callback"
    idp = subprocess.Popen(
        [
            "node",
            str(IDP),
            "--port",
            str(idp_port),
            "--client-id",
            CLIENT_ID,
            "--client-secret",
            CLIENT_SECRET,
            "--redirect-uri",
            redirect,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert idp.stdout is not None
        assert idp.stdout.readline().strip() == "listening"
        env = {
            "SIGNIN_PROVIDERS": "acme,down",
            "SIGNIN_ACME_ISSUER": f"http://127.0.0.1:{idp_port}",
            "SIGNIN_ACME_CLIENT_ID": CLIENT_ID,
            "SIGNIN_ACME_CLIENT_SECRET": CLIENT_SECRET,
            "SIGNIN_ACME_LABEL": "Acme SSO",
            "SIGNIN_DOWN_ISSUER": f"http://127.0.0.1:{free_port()}",
            "SIGNIN_DOWN_CLIENT_ID": "x",
            "SIGNIN_DOWN_CLIENT_SECRET": "y",
            "SIGNIN_DOWN_LABEL": "Down SSO",
        }
        with on_localhost(mail, port, **env) as server:
            yield server
    finally:
        terminate(idp, timeout=10)
        if idp.stdout:
            idp.stdout.close()


def through_acme(page: Page, login: str) -> None:
    """Sign in with Acme SSO from the sign-in page: the provider's pages (its sign-in, then
    its consent, each when it asks), then back here."""
    page.goto("/account/sign-in")
    with page.expect_navigation():
        page.get_by_role("link", name="Sign in with Acme SSO").click()
    while "/interaction/" in page.url:  # the provider's pages
        if page.locator("input[name=login]").count():
            page.locator("input[name=login]").fill(login)
            page.locator("input[name=password]").fill("anything")
        with page.expect_navigation():
            page.locator("button[type=submit]").click()
        page.wait_for_load_state()


def accounts_of(database_url: str, email: str) -> list[asyncpg.Record]:
    """The accounts of `email`: user id, verification, password hash."""
    query = "SELECT user_id, email_verified_at, password_hash FROM accounts WHERE email = $1"
    return run_with_connection(database_url, lambda c: c.fetch(query, email))


def test_a_new_person_gets_a_verified_account_and_the_same_one_next_time(
    page: Page, live: ThreadServer, database_url: str
) -> None:
    through_acme(page, "newbie@example.com")
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    expect(page.get_by_text("newbie@example.com").first).to_be_visible()
    [account] = accounts_of(database_url, "newbie@example.com")
    assert account["email_verified_at"] is not None  # the provider vouched for it
    expect(page.get_by_role("cell", name="Acme SSO")).to_be_visible()  # identities
    expect(page.get_by_role("cell", name="acme").first).to_be_visible()  # the session's

    # Its only way in: unlinking is refused until a password or passkey exists.
    page.locator("#identities").get_by_role("button", name="Unlink").click()
    expect(page.get_by_role("alert")).to_contain_text("This is your only way to sign in")

    sign_out(page)
    through_acme(page, "newbie@example.com")
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    assert accounts_of(database_url, "newbie@example.com") == [account]  # the same one
    # No password matches an account made through a provider.
    with httpx2.Client(base_url=live.url) as http:
        login = {"username": "newbie@example.com", "password": "!"}
        assert http.post("/auth/login", data=login).status_code == 401


def test_a_verified_account_with_the_address_is_linked_and_keeps_its_password(
    page: Page, mail: SmtpServer, live: ThreadServer, database_url: str
) -> None:
    sign_up(page, mail, "linked@example.com", "Lin")
    [account] = accounts_of(database_url, "linked@example.com")
    through_acme(page, "linked@example.com")
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    assert accounts_of(database_url, "linked@example.com") == [account]  # not a second one
    notice = mails_to(mail, "linked@example.com", 2)[-1]
    assert notice["Subject"] == "Acme SSO now signs you in"
    [identity] = run_sql(database_url, "SELECT provider, user_id FROM identities")
    assert (identity["provider"], identity["user_id"]) == ("acme", account["user_id"])

    # A second factor still applies after the provider.
    setting_up = page.locator("form[action='/account/mfa/totp']")
    setting_up.get_by_label("Current password").fill(PASSWORD)
    setting_up.get_by_role("button", name="Set up an authenticator app").click()
    totp = pyotp.TOTP(page.locator("code.secret").inner_text())
    page.get_by_label("Authentication code").fill(totp.now())
    page.get_by_role("button", name="Turn it on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    recovery = page.locator("ul.codes code").all_inner_texts()
    page.goto("/account")
    sign_out(page)
    through_acme(page, "linked@example.com")
    page.get_by_role("heading", name="One more step").wait_for()
    page.get_by_label("Authentication code").fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    expect(page.get_by_role("cell", name="acme + code")).to_be_visible()

    # The password still signs in; with it, the identity can be unlinked.
    sign_out(page)
    fill_sign_in(page, "linked@example.com")
    page.get_by_text("Use a recovery code").click()
    page.get_by_label("Recovery code").fill(recovery[0])
    page.get_by_role("button", name="Sign in with the recovery code").click()
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    # Operators see it on the user's page.
    granted = subprocess.run(
        [CLI, "accounts", "grant", "linked@example.com", "users:read"], capture_output=True
    )
    assert granted.returncode == 0
    page.goto(f"/console/users/{account['user_id']}")
    expect(page.get_by_text("Acme SSO: linked@example.com")).to_be_visible()
    page.goto("/account")
    page.locator("#identities").get_by_role("button", name="Unlink").click()
    expect(page.get_by_role("status")).to_contain_text("no longer signs you in")
    assert run_sql(database_url, "SELECT * FROM identities") == []


def test_an_address_the_provider_has_not_verified_never_links(
    page: Page, mail: SmtpServer, live: ThreadServer, database_url: str
) -> None:
    sign_up(page, mail, "unverified.pat@example.com", "Pat")
    through_acme(page, "unverified.pat@example.com")  # email_verified: false
    expect(page.get_by_role("alert")).to_contain_text("An account already uses this email")
    assert run_sql(database_url, "SELECT * FROM identities") == []
    assert len(accounts_of(database_url, "unverified.pat@example.com")) == 1


def test_a_forged_or_replayed_callback_signs_nobody_in(
    page: Page, live: ThreadServer, database_url: str
) -> None:
    callbacks: list[str] = []
    page.on("request", lambda r: callbacks.append(r.url) if "/callback?" in r.url else None)
    through_acme(page, "once@example.com")
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    [callback] = callbacks
    with httpx2.Client(follow_redirects=False) as http:
        # The same callback from another browser (no sign-in of its own), and with a forged
        # state: a page, no session.
        for url in (callback, callback.replace("state=", "state=forged")):
            answer = http.get(url)
            assert answer.status_code == 400
            assert (
                "set-cookie" not in answer.headers
                or "user_service_session" not in answer.headers["set-cookie"]
            )
    page.goto(callback)  # in the browser that signed in: its sign-in's cookie is spent
    expect(page.get_by_role("alert")).to_contain_text("cannot be completed")
    refused = run_sql(
        database_url, "SELECT count(*) AS n FROM audit_events WHERE kind = 'identity.refused'"
    )
    assert refused[0]["n"] == 3
    with httpx2.Client(base_url=live.url) as http:
        assert http.get("/auth/providers/nobody/start").status_code == 404


def test_a_provider_that_is_down_gets_a_clear_page_and_passwords_still_work(
    page: Page, mail: SmtpServer, live: ThreadServer
) -> None:
    sign_up(page, mail, "steady@example.com", "Ste")
    page.goto("/account/sign-in")
    page.get_by_role("link", name="Sign in with Down SSO").click()
    expect(page.get_by_role("alert")).to_contain_text("Down SSO cannot be reached now")
    with httpx2.Client(base_url=live.url) as http:
        assert http.get("/auth/providers/down/start").status_code == 503
        assert http.get("/healthz").status_code == 200
        listed = http.get("/auth/providers").json()
        assert [p["label"] for p in listed] == ["Acme SSO", "Down SSO"]
        assert listed[0]["start_url"] == f"{live.url}/auth/providers/acme/start"
    sign_in(page, "steady@example.com")


def test_a_malformed_provider_setting_stops_serve_in_one_line() -> None:
    env = {**os.environ, "SIGNIN_PROVIDERS": "acme", "SIGNIN_ACME_ISSUER": "ftp://x"}
    stopped = subprocess.run([CLI, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert stopped.returncode != 0
    assert stopped.stderr.strip().splitlines()[-1] == (
        "user-service: SIGNIN_ACME_ISSUER must be the provider's https URL (http only on this "
        "machine), not 'ftp://x'"
    )
