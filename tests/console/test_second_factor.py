"""Second factors in Chromium: an authenticator app set up and typed from the pages, and a
passkey made and used by Chromium's virtual authenticator (DevTools' WebAuthn domain). They
serve on localhost: WebAuthn needs a host name, and refuses an IP address."""

import time
from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Page, expect

from tests.accounts.conftest import PASSWORD
from tests.console.conftest import on_localhost, screenshot, sign_in, sign_out, sign_up
from tests.smtp import SmtpServer
from tests.support import ThreadServer, run_sql


@pytest.fixture(scope="module")
def live(mail: SmtpServer, database_url: str) -> Iterator[ThreadServer]:
    with on_localhost(mail) as server:
        yield server


def authenticator(page: Page) -> None:
    """A passkey authenticator in this page's browser, as a phone or a laptop has one: it
    keeps discoverable credentials and verifies its user."""
    devtools = page.context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )


def test_a_passkey_is_added_and_then_signs_in_alone(
    page: Page, mail: SmtpServer, live: ThreadServer, database_url: str
) -> None:
    authenticator(page)
    sign_up(page, mail, "passkey@example.com", "Pat Key")
    sign_in(page, "passkey@example.com")
    adding = page.locator("form[action='/account/mfa/passkeys']")
    adding.get_by_label("Name it").fill("Test laptop")
    adding.get_by_label("Current password").fill(PASSWORD)
    adding.get_by_role("button", name="Add a passkey").click()
    expect(page.get_by_role("status")).to_contain_text("The passkey is added")
    expect(page.get_by_role("cell", name="Test laptop")).to_be_visible()
    screenshot(page, "two-factor")
    sign_out(page)

    page.get_by_role("button", name="Sign in with a passkey").click()
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    expect(page.get_by_text("Pat Key · passkey@example.com")).to_be_visible()
    [session] = run_sql(
        database_url, "SELECT amr FROM auth_sessions WHERE revoked_at IS NULL ORDER BY created_at"
    )[-1:]
    assert session["amr"] in (["hwk", "mfa"], ["swk", "mfa"])  # a verified user: two factors

    # After the password, the passkey is the second factor.
    sign_out(page)
    page.get_by_label("Email address").fill("passkey@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("button", name="Use a passkey").click()
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    expect(page.get_by_role("cell", name="password + passkey")).to_be_visible()


def test_an_authenticator_app_is_set_up_and_asked_for_at_sign_in(
    page: Page, mail: SmtpServer
) -> None:
    sign_up(page, mail, "app@example.com", "App User")
    sign_in(page, "app@example.com")
    setting_up = page.locator("form[action='/account/mfa/totp']")
    setting_up.get_by_label("Current password").fill(PASSWORD)
    setting_up.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator("figure.qr svg")).to_be_visible()  # drawn by the service
    totp = pyotp.TOTP(page.locator("code.secret").inner_text())
    page.get_by_label("Authentication code").fill(totp.now())
    page.get_by_role("button", name="Turn it on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = page.locator("ul.codes code").all_inner_texts()
    assert len(codes) == 10
    page.goto("/account")
    sign_out(page)

    page.get_by_label("Email address").fill("app@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="One more step").wait_for()
    page.get_by_label("Authentication code").fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("The code is wrong, or used already.")
    page.get_by_label("Authentication code").fill(totp.at(time.time() + totp.interval))
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.get_by_role("heading", name="My account", exact=True).wait_for()
    expect(page.get_by_role("cell", name="password + code")).to_be_visible()
