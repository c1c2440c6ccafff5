"""The pages in a real browser: Debian's Chromium driven by Playwright, against a live
server whose emails go to a real SMTP server. (Playwright's own browser download is never
used: `make test` installs the chromium package.)"""

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.accounts.conftest import PASSWORD, mails_to, text_of
from tests.smtp import SmtpServer
from tests.support import Server, ThreadServer, free_port
from user_service.config import get_settings
from user_service.main import get_app

CHROMIUM = "/usr/bin/chromium"
# As root, and on a machine whose network is closed: no sandbox, no background fetches.
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# `make screenshots` sets this: the browser tests then save the main pages there.
SCREENSHOTS = os.environ.get("SCREENSHOTS")


@pytest.fixture(scope="module")
def mail() -> Iterator[SmtpServer]:
    with SmtpServer() as smtp:
        yield smtp


@pytest.fixture(scope="module")
def live(mail: SmtpServer, database_url: str) -> Iterator[Server]:
    env = {**os.environ, **mail.env(), "AUTH_ADDRESS_LIMIT_PER_MINUTE": "1000"}
    with Server("--workers", "1", env=env) as server:
        yield server


# Per module: while Playwright's sync API runs, its event loop is this thread's, and other
# tests' asyncio.run() would refuse to start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser: Browser, live: Server) -> Iterator[Callable[[], Page]]:
    """Opens a page in a browser of its own (its own cookies), closed after the test."""
    contexts = []

    def open_page() -> Page:
        context = browser.new_context(base_url=live.url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page: Callable[[], Page]) -> Page:
    return new_page()


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{SCREENSHOTS}/{name}.png", full_page=True)


@contextlib.contextmanager
def on_localhost(mail: SmtpServer, port: int | None = None, **env: str) -> Iterator[ThreadServer]:
    """The service on localhost (on `port`, with `env`), served by uvicorn in this process
    (so that coverage sees its code run): WebAuthn needs a host name, and openid-client the
    issuer it discovers."""
    port = port or free_port()
    settings = {
        **mail.env(),
        "AUTH_ADDRESS_LIMIT_PER_MINUTE": "1000",
        "PUBLIC_URL": f"http://localhost:{port}",
        **env,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in settings.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        with ThreadServer(get_app(), host="localhost", port=port) as server:
            yield server
    get_settings.cache_clear()


def sign_up(page: Page, mail: SmtpServer, email: str, name: str = "Ada") -> None:
    """Sign up through the pages and verify through the emailed link."""
    page.goto("/account/sign-up")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create the account").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.goto(link(mail, email, "verify"))
    page.get_by_role("button", name="Verify my email address").click()
    page.get_by_role("heading", name="Your email address is verified").wait_for()


def link(mail: SmtpServer, email: str, page: str, count: int = 1) -> str:
    """The link to `page` in the newest of `count` emails to `email`: it must lead here."""
    found = re.search(
        rf"http://\S+/account/{page}\?token=[\w-]+", text_of(mails_to(mail, email, count)[-1])
    )
    assert found, f"no {page} link"
    return found[0]


def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    page.goto("/account/sign-in")
    fill_sign_in(page, email, password)
    page.get_by_role("heading", name="My account", exact=True).wait_for()


def sign_out(page: Page) -> None:
    """Sign out with the header's button, once the browser is back on the sign-in page (a
    navigation before that would race the sign-out)."""
    page.get_by_role("button", name=re.compile("^Sign out \\(")).click()
    page.get_by_role("heading", name="Sign in").wait_for()


def fill_sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """Sign in on the sign-in page the browser is on."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
