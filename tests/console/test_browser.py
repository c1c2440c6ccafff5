"""The account pages as a person uses them, in Chromium: by mouse and by keyboard."""

import http.server
import subprocess
import threading
from collections.abc import Callable, Iterator

import httpx2
import pytest
from playwright.sync_api import Page, expect

from tests.accounts.conftest import PASSWORD
from tests.console.conftest import link, screenshot, sign_in, sign_up
from tests.smtp import SmtpServer
from tests.support import CLI, Server, bearer, free_port, run_sql


def test_sign_up_verify_by_email_and_sign_in(page: Page, mail: SmtpServer) -> None:
    page.goto("/account/sign-up")
    screenshot(page, "sign-up")
    sign_up(page, mail, "ada@example.com", "Ada Lovelace")
    sign_in(page, "ada@example.com")
    expect(page.get_by_text("ada@example.com (verified)")).to_be_visible()
    expect(page.get_by_text("(this browser)")).to_be_visible()
    screenshot(page, "my-account")


def test_a_wrong_password_is_said_on_the_page(page: Page, mail: SmtpServer) -> None:
    sign_up(page, mail, "typo@example.com")
    page.goto("/account/sign-in")
    screenshot(page, "sign-in")
    page.get_by_label("Email address").fill("typo@example.com")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("The email address or password is wrong.")


def test_forgot_and_reset_the_password(page: Page, mail: SmtpServer) -> None:
    sign_up(page, mail, "forgetful@example.com")
    page.goto("/account/forgot-password")
    page.get_by_label("Email address").fill("forgetful@example.com")
    page.get_by_role("button", name="Email me a link").click()
    page.get_by_role("heading", name="Check your inbox").wait_for()
    page.goto(link(mail, "forgetful@example.com", "reset-password", 2))
    page.get_by_label("New password").fill("a brand new passphrase")
    page.get_by_role("button", name="Set the password").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")
    sign_in(page, "forgetful@example.com", "a brand new passphrase")


def test_ending_a_session_signs_the_other_browser_out(
    new_page: Callable[[], Page], mail: SmtpServer
) -> None:
    phone, laptop = new_page(), new_page()
    sign_up(phone, mail, "two@example.com")
    sign_in(phone, "two@example.com")
    sign_in(laptop, "two@example.com")
    phone.reload()
    rows = phone.get_by_role("row").filter(has_not_text="(this browser)")
    rows.last.get_by_role("button", name="Sign out").click()
    expect(phone.get_by_role("status")).to_have_text("The session is signed out.")
    laptop.reload()
    expect(laptop.get_by_role("heading", name="Sign in")).to_be_visible()
    phone.reload()
    expect(phone.get_by_role("heading", name="My account", exact=True)).to_be_visible()


def test_change_my_name_and_password_then_delete_my_account(
    page: Page, mail: SmtpServer, database_url: str
) -> None:
    sign_up(page, mail, "changes@example.com", "Old Name")
    sign_in(page, "changes@example.com")
    page.get_by_label("Name", exact=True).fill("New Name")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("status")).to_have_text("Your name is changed.")
    password_form = page.locator("form[action='/account/password']")
    password_form.get_by_label("Current password").fill(PASSWORD)
    password_form.get_by_label("New password").fill("another long passphrase")
    password_form.get_by_role("button").click()
    expect(page.get_by_role("status")).to_contain_text("Your password is changed")
    delete = page.locator("form[action='/account/delete']")
    delete.get_by_label("Current password").fill("another long passphrase")
    delete.get_by_role("checkbox").check()
    delete.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_role("heading", name="Your account is deleted")).to_be_visible()
    assert run_sql(database_url, "SELECT count(*) FROM accounts")[0][0] == 0


def test_sign_in_with_the_keyboard_only(page: Page, mail: SmtpServer) -> None:
    sign_up(page, mail, "keys@example.com")
    page.goto("/account/sign-in")
    # The email field has the focus; Tab reaches the password; Enter sends the form.
    expect(page.get_by_label("Email address")).to_be_focused()
    page.keyboard.type("keys@example.com")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My account", exact=True)).to_be_visible()
    # Every control on the page is reachable with Tab, and shows where the focus is.
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert "Skip to content" in focused


class Forged(http.server.BaseHTTPRequestHandler):
    """Another site's page, which posts a form to the service (at `target`) on load."""

    target = ""

    def do_GET(self) -> None:
        body = (
            f'<form id="f" method="post" action="{self.target}/account/name">'
            '<input name="name" value="Hacked"><input name="csrf" value="guess"></form>'
            '<script>document.getElementById("f").submit()</script>'
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def forger() -> Iterator[tuple[str, type[Forged]]]:
    """Another site (another port), whose page posts a form to the service on load."""
    server = http.server.HTTPServer(("127.0.0.1", free_port()), Forged)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", Forged
    server.shutdown()
    server.server_close()


def test_a_forged_form_from_another_site_is_refused(
    page: Page, mail: SmtpServer, live: Server, forger: tuple[str, type[Forged]], database_url: str
) -> None:
    url, handler = forger
    handler.target = live.url
    sign_up(page, mail, "victim@example.com", "Victim")
    sign_in(page, "victim@example.com")
    page.goto(url)
    expect(page.get_by_role("alert")).to_contain_text("did not come from this site")
    names = run_sql(database_url, "SELECT nickname FROM users")
    assert [row[0] for row in names] == ["Victim"]


def test_an_operator_searches_renames_disables_and_deletes_users(
    new_page: Callable[[], Page], mail: SmtpServer, live: Server, database_url: str
) -> None:
    operator, person = new_page(), new_page()
    sign_up(person, mail, "bob@example.com", "Bob Builder")
    sign_up(operator, mail, "olive@example.com", "Olive")
    granted = subprocess.run(
        [CLI, "accounts", "grant", "olive@example.com", "users:read", "users:write", "audit:read"],
        capture_output=True,
        text=True,
    )
    assert granted.returncode == 0, granted.stderr
    with httpx2.Client(base_url=live.url, headers=bearer(live.token())) as api:
        for name in ("alice", "carol", "dave"):
            api.post("/users", json={"name": name}).raise_for_status()
    sign_in(person, "bob@example.com")
    sign_in(operator, "olive@example.com")

    operator.goto("/console")
    expect(operator.locator("svg.chart")).to_be_visible()
    screenshot(operator, "console-overview")
    operator.goto("/console/users")
    expect(operator.get_by_role("cell", name="carol")).to_be_visible()
    # Searching as one types (htmx), by a part of the address.
    operator.get_by_label("Search by email or name").fill("builder")
    expect(operator.get_by_role("cell", name="carol")).to_be_hidden()
    expect(operator.get_by_role("link", name="Bob Builder")).to_be_visible()
    screenshot(operator, "console-users")

    operator.get_by_role("link", name="Bob Builder").click()
    operator.get_by_label("Name", exact=True).fill("Robert Builder")
    operator.get_by_role("button", name="Rename").click()
    expect(operator.get_by_role("heading", name="Robert Builder")).to_be_visible()
    operator.get_by_role("button", name="Disable the account").click()
    expect(operator.get_by_role("button", name="Enable the account")).to_be_visible()
    screenshot(operator, "console-user")
    person.reload()  # disabling ended Bob's sessions
    expect(person.get_by_role("heading", name="Sign in")).to_be_visible()

    operator.get_by_role("link", name="Delete this user…").click()
    operator.get_by_role("button", name="Delete for good").click()
    expect(operator.get_by_role("heading", name="Users")).to_be_visible()
    names = {row[0] for row in run_sql(database_url, "SELECT nickname FROM users")}
    assert names == {"Olive", "alice", "carol", "dave"}
    operator.goto("/console/audit")
    screenshot(operator, "console-audit")
    for kind in ("user.renamed", "user.disabled", "user.deleted"):
        expect(operator.get_by_role("cell", name=kind).first).to_be_visible()


def test_the_api_docs_work_under_their_csp_and_fetch_nothing_from_elsewhere(
    page: Page, live: Server
) -> None:
    fetched: list[str] = []
    refused: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    page.goto("/docs")
    page.get_by_text("/users/{user_id}").first.wait_for()  # Swagger UI drew the operations
    page.get_by_role("button", name="Authorize").wait_for()
    assert fetched
    assert all(url.startswith(live.url) for url in fetched), fetched
    assert not refused
