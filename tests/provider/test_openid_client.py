"""The OpenID Provider judged by a certified relying party: panva's openid-client
(tests/provider/rp) discovers it, registers, runs the code flow with PKCE while Debian's
Chromium signs in and consents on the pages, then uses userinfo, refresh (rotation and
replay), introspection, revocation, client_credentials and RP-initiated logout. Its own
checks (issuer, signature through the JWKS, aud, nonce, state, iss, at_hash) are the
verdict. Served on localhost by uvicorn in this process (coverage sees it)."""

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2
import jwt
import pytest
from playwright.sync_api import Page, expect

from tests.accounts.conftest import PASSWORD
from tests.console.conftest import (
    fill_sign_in,
    on_localhost,
    sign_up,
)
from tests.provider.rp import RelyingParty, RelyingPartyError
from tests.smtp import SmtpServer
from tests.support import ThreadServer, bearer, issue_token


@pytest.fixture(scope="module")
def live(mail: SmtpServer, database_url: str) -> Iterator[ThreadServer]:
    with on_localhost(mail) as server:
        yield server


@pytest.fixture(scope="module")
def rp() -> Iterator[RelyingParty]:
    with RelyingParty() as party:
        yield party


class Application(ThreadingHTTPServer):
    """The application's own site, where the browser comes back: it records each visit."""

    def __init__(self) -> None:
        self.visits: list[str] = []
        site = self

        class Visit(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/favicon.ico":  # the browser's own visit
                    site.visits.append(f"{site.url}{self.path}")
                body = b"Back at the application"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Visit)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.callback = f"{self.url}/callback"
        self.bye = f"{self.url}/signed-out"

    def wait(self, page: Page, count: int = 1) -> str:
        """The address of the `count`th visit, once the browser has made it."""
        expect(page.get_by_text("Back at the application")).to_be_visible()
        assert len(self.visits) >= count, self.visits
        return self.visits[count - 1]


@pytest.fixture
def application() -> Iterator[Application]:
    site = Application()
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    yield site
    site.shutdown()
    site.server_close()
    thread.join()


@pytest.fixture
def registrar(database_url: str) -> str:
    """An operator's API token that may register applications."""
    return issue_token(database_url, "clients:write", "users:read")


def registered(
    rp: RelyingParty, live: ThreadServer, application: Application, token: str, **metadata: Any
) -> Any:
    body = {
        "client_name": "Acme Notes",
        "redirect_uris": [application.callback],
        "post_logout_redirect_uris": [application.bye],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile email offline_access",
        **metadata,
    }
    return rp.call("register", issuer=live.url, metadata=body, initial_access_token=token)


def test_the_code_flow_with_pkce_signing_in_and_consenting_in_chromium(
    page: Page,
    mail: SmtpServer,
    live: ThreadServer,
    rp: RelyingParty,
    application: Application,
    registrar: str,
) -> None:
    client = registered(rp, live, application, registrar)
    assert client["client_secret"]
    sign_up(page, mail, "robin@example.com", "Robin")
    asked = rp.call(
        "authorize_url",
        scope="openid profile email offline_access",
        redirect_uri=application.callback,
        params={"login_hint": "robin@example.com"},
    )
    page.goto(asked["url"])
    expect(page.get_by_label("Email address")).to_have_value("robin@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Allow Acme Notes?")).to_be_visible()
    expect(page.get_by_text("offline_access")).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    first = rp.call("callback", url=application.wait(page))
    claims, tokens = first["claims"], first["tokens"]
    assert jwt.get_unverified_header(tokens["id_token"])["alg"] == "RS256"
    assert claims["email"] == "robin@example.com"
    assert claims["email_verified"] is True
    assert claims["name"] == "Robin"
    assert claims["amr"] == ["pwd"]
    assert {"auth_time", "sid", "at_hash"} <= claims.keys()

    info = rp.call("userinfo", access_token=tokens["access_token"], sub=claims["sub"])
    assert info == {
        "sub": claims["sub"],
        "email": "robin@example.com",
        "email_verified": True,
        "name": "Robin",
    }

    # Refresh rotates; the spent token, presented again, ends the whole grant.
    refreshed = rp.call("refresh", refresh_token=tokens["refresh_token"])["tokens"]
    assert refreshed["refresh_token"] != tokens["refresh_token"]
    with pytest.raises(RelyingPartyError) as replayed:
        rp.call("refresh", refresh_token=tokens["refresh_token"])
    assert replayed.value.error["error"] == "invalid_grant"
    with pytest.raises(RelyingPartyError) as family:
        rp.call("refresh", refresh_token=refreshed["refresh_token"])
    assert family.value.error["error"] == "invalid_grant"
    assert rp.call("introspect", token=refreshed["access_token"]) == {"active": False}

    # The same scopes again: no page, straight back.
    again = rp.call(
        "authorize_url",
        scope="openid profile email offline_access",
        redirect_uri=application.callback,
    )
    page.goto(again["url"])
    second = rp.call("callback", url=application.wait(page, 2))
    live_tokens = second["tokens"]
    seen = rp.call("introspect", token=live_tokens["refresh_token"])
    assert seen["active"] is True
    assert seen["client_id"] == client["client_id"]
    assert seen["sub"] == claims["sub"]
    assert rp.call("introspect", token=live_tokens["access_token"])["active"] is True
    rp.call("revoke", token=live_tokens["refresh_token"])
    assert rp.call("introspect", token=live_tokens["refresh_token"]) == {"active": False}
    assert rp.call("introspect", token=live_tokens["access_token"]) == {"active": False}

    # prompt=login: the person signs in again, and the ID token says when.
    fresh = rp.call(
        "authorize_url",
        scope="openid",
        redirect_uri=application.callback,
        params={"prompt": "login", "max_age": 600},
    )
    page.goto(fresh["url"])
    fill_sign_in(page, "robin@example.com")
    third = rp.call("callback", url=application.wait(page, 3))
    assert third["claims"]["auth_time"] >= claims["auth_time"]
    assert third["claims"]["sid"] != claims["sid"]  # a new sign-in, a new session

    # RP-initiated logout: the browser's session ends, and it goes back with the state.
    out = rp.call(
        "end_session_url",
        id_token_hint=third["tokens"]["id_token"],
        post_logout_redirect_uri=application.bye,
        state="bye-state",
    )
    page.goto(out["url"])
    assert application.wait(page, 4) == f"{application.bye}?state=bye-state"
    page.goto(f"{live.url}/account")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_a_public_client_with_eddsa_id_tokens_and_logout_without_a_hint(
    page: Page,
    mail: SmtpServer,
    live: ThreadServer,
    rp: RelyingParty,
    application: Application,
    registrar: str,
) -> None:
    client = registered(
        rp,
        live,
        application,
        registrar,
        token_endpoint_auth_method="none",
        id_token_signed_response_alg="EdDSA",
        grant_types=["authorization_code"],
        scope="openid email",
    )
    assert "client_secret" not in client
    sign_up(page, mail, "sam@example.com", "Sam")
    asked = rp.call("authorize_url", scope="openid email", redirect_uri=application.callback)
    page.goto(asked["url"])
    fill_sign_in(page, "sam@example.com")
    page.get_by_role("button", name="Deny").click()
    with pytest.raises(RelyingPartyError) as denied:
        rp.call("callback", url=application.wait(page))
    assert denied.value.error.get("error") == "access_denied", denied.value.error

    asked = rp.call("authorize_url", scope="openid email", redirect_uri=application.callback)
    page.goto(asked["url"])
    page.get_by_role("button", name="Allow").click()
    done = rp.call("callback", url=application.wait(page, 2))
    assert jwt.get_unverified_header(done["tokens"]["id_token"])["alg"] == "EdDSA"
    assert "refresh_token" not in done["tokens"]  # no offline_access

    # The account page lists the application; disconnecting it ends its tokens.
    page.goto(f"{live.url}/account")
    apps = page.locator("section#apps")
    expect(apps.get_by_role("cell", name="Acme Notes")).to_be_visible()
    apps.get_by_role("button", name="Disconnect").click()
    expect(page.get_by_role("status")).to_contain_text("disconnected")
    with pytest.raises(RelyingPartyError) as ended:
        rp.call("userinfo", access_token=done["tokens"]["access_token"], sub=done["claims"]["sub"])
    assert ended.value.error["status"] == 401

    # Without an id_token_hint, the person is asked before being signed out.
    out = rp.call("end_session_url", post_logout_redirect_uri=application.bye, state="s1")
    assert f"client_id={client['client_id']}" in out["url"]  # openid-client sends it
    page.goto(out["url"])
    expect(page.get_by_role("heading", name="Sign out?")).to_be_visible()
    page.get_by_role("button", name="Sign out", exact=True).click()
    assert application.wait(page, 3) == f"{application.bye}?state=s1"


def test_client_credentials_reach_the_api_scope_by_scope(
    live: ThreadServer,
    rp: RelyingParty,
    application: Application,
    registrar: str,
) -> None:
    registered(
        rp,
        live,
        application,
        registrar,
        grant_types=["client_credentials"],
        redirect_uris=[],
        post_logout_redirect_uris=[],
        scope="users:read",
    )
    tokens = rp.call("client_credentials", scope="users:read")
    assert tokens["token_type"].lower() == "bearer"
    with httpx2.Client(base_url=live.url) as http:
        assert http.get("/users", headers=bearer(tokens["access_token"])).status_code == 200
        made = http.post("/users", json={"nickname": "x"}, headers=bearer(tokens["access_token"]))
        assert made.status_code == 403
    seen = rp.call("introspect", token=tokens["access_token"])
    assert seen["active"] is True
    assert seen["scope"] == "users:read"
    with pytest.raises(RelyingPartyError) as refused:
        rp.call("client_credentials", scope="users:write")
    assert refused.value.error["error"] == "invalid_scope"
    assert re.fullmatch(r"[\w-]+", seen["client_id"])
