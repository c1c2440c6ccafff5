"""What the provider's tests share: a browser on the app in this process, a person signed in
there, applications registered through the registration endpoint, and the code flow's
steps by HTTP."""

import base64
import hashlib
import html
import re
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from fastapi.testclient import TestClient

from tests.accounts import conftest as accounts
from tests.accounts.conftest import PASSWORD, signed_up
from tests.console.conftest import browser, mail, new_page, page  # noqa: F401 (the browser's)
from tests.smtp import SmtpServer
from tests.support import bearer, issue_token
from user_service.main import get_app

smtp = accounts.smtp
ISSUER = "http://127.0.0.1:8000"  # the tests' PUBLIC_URL-less default
REDIRECT = "http://127.0.0.1:9/callback"
PERSON = "pat@example.com"


@pytest.fixture
def site(smtp: SmtpServer) -> Iterator[TestClient]:
    """A browser on the app in this process: it keeps cookies and follows no redirect."""
    with TestClient(get_app(), follow_redirects=False, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def registrar(database_url: str) -> dict[str, str]:
    """An operator's API token that may register applications (and read users)."""
    return bearer(issue_token(database_url, "clients:write", "users:read"))


def register(site: TestClient, registrar: dict[str, str], **metadata: Any) -> dict[str, Any]:
    """A client registered with `metadata` over the defaults; its registration."""
    body = {
        "client_name": "Acme Notes",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile email offline_access",
        **metadata,
    }
    answer = site.post("/oauth/register", json=body, headers=registrar)
    assert answer.status_code == 201, answer.text
    client: dict[str, Any] = answer.json()
    return client


def csrf(site: TestClient, html_page: str | None = None) -> str:
    shown = html_page or site.get("/account/sign-in").text
    found = re.search(r'name="csrf" value="([^"]+)"', shown)
    assert found
    return found[1]


def signed_in(site: TestClient, smtp: SmtpServer, email: str = PERSON) -> dict[str, Any]:
    """A person with an account, signed in in this browser; their API token pair."""
    pair = signed_up(site, smtp, email, "Pat")
    site.cookies.clear()
    answer = site.post(
        "/account/sign-in", data={"csrf": csrf(site), "email": email, "password": PASSWORD}
    )
    assert answer.status_code == 303, answer.text
    return pair


def pkce() -> tuple[str, str]:
    """A code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(
    site: TestClient, client: dict[str, Any], challenge: str, **params: str
) -> httpx2.Response:
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "openid email",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    return site.get(f"/oauth/authorize?{urlencode(query)}")


def returned(answer: httpx2.Response) -> dict[str, str]:
    """The query the browser was sent back to the application's redirect URI with."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?"), location
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def consent(site: TestClient, shown: httpx2.Response, decision: str = "allow") -> dict[str, str]:
    """Answer the consent page; the query the browser goes back with."""
    assert shown.status_code == 200, shown.text
    found = re.search(r'name="request" value="([^"]+)"', shown.text)
    assert found
    answer = site.post(
        "/oauth/authorize",
        data={
            "csrf": csrf(site, shown.text),
            "request": html.unescape(found[1]),
            "decision": decision,
        },
    )
    assert answer.status_code == 200, answer.text
    moved = re.search(r'http-equiv="refresh" content="0; url=([^"]+)"', answer.text)
    assert moved
    url = html.unescape(moved[1])
    assert url.startswith(REDIRECT + "?")
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def code_for(site: TestClient, client: dict[str, Any], **params: str) -> tuple[str, str]:
    """A code for the signed-in person (consenting if asked), and its verifier."""
    verifier, challenge = pkce()
    answer = authorize(site, client, challenge, **params)
    query = consent(site, answer) if answer.status_code == 200 else returned(answer)
    return query["code"], verifier


def exchange(
    site: TestClient, client: dict[str, Any], code: str, verifier: str, **form: str
) -> httpx2.Response:
    return site.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
            **form,
        },
        auth=(client["client_id"], client["client_secret"]),
    )


def refresh(site: TestClient, client: dict[str, Any], token: str) -> httpx2.Response:
    return site.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": token},
        auth=(client["client_id"], client["client_secret"]),
    )
