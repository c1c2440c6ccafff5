"""The OpenID Provider by HTTP, as an attacker tries it: unregistered clients and redirect
URIs, implicit and PKCE-less requests, replayed codes and refresh tokens, parallel
refreshes, wrong secrets, and tokens used where they do not belong. (The certified relying
party drives the happy paths: test_openid_client.py.)"""

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import httpx2
import jwt
import pytest
from fastapi.testclient import TestClient

from tests.accounts.conftest import PASSWORD, signed_up
from tests.accounts.test_mfa import enrol, next_code
from tests.provider.conftest import (
    ISSUER,
    PERSON,
    REDIRECT,
    authorize,
    code_for,
    consent,
    csrf,
    exchange,
    pkce,
    refresh,
    register,
    returned,
    signed_in,
)
from tests.smtp import SmtpServer
from tests.support import bearer, issue_token, run_sql
from user_service.config import get_settings
from user_service.main import get_app


def test_discovery_advertises_the_code_flow_with_s256_alone(site: TestClient) -> None:
    for path in ("/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"):
        meta = site.get(path).json()
        assert meta["issuer"] == ISSUER
        assert meta["response_types_supported"] == ["code"]
        assert meta["code_challenge_methods_supported"] == ["S256"]
        assert meta["authorization_response_iss_parameter_supported"] is True
        assert meta["id_token_signing_alg_values_supported"][0] == "RS256"
        assert {"offline_access", "users:read", "clients:write"} <= set(meta["scopes_supported"])
    keys = site.get("/.well-known/jwks.json").json()["keys"]
    assert sorted(key["alg"] for key in keys) == ["EdDSA", "RS256"]
    assert all("d" not in key and "p" not in key for key in keys)  # public halves only


def test_registration_needs_clients_write_and_never_gives_more_than_the_registrant_has(
    site: TestClient, database_url: str, registrar: dict[str, str]
) -> None:
    body = {"redirect_uris": [REDIRECT], "client_name": "X"}
    assert site.post("/oauth/register", json=body).status_code == 401
    reader = bearer(issue_token(database_url, "users:read"))
    assert site.post("/oauth/register", json=body, headers=reader).status_code == 403
    beyond = site.post(
        "/oauth/register", json={**body, "scope": "openid users:write"}, headers=registrar
    )
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "invalid_client_metadata"
    assert "users:write" in beyond.json()["error_description"]
    for uri in ("http://app.example/cb", "https://app.example/cb#x", "javascript:alert(1)"):
        bad = site.post("/oauth/register", json={**body, "redirect_uris": [uri]}, headers=registrar)
        assert bad.json()["error"] == "invalid_redirect_uri", uri
    public = site.post(
        "/oauth/register",
        json={**body, "token_endpoint_auth_method": "none", "grant_types": ["client_credentials"]},
        headers=registrar,
    )
    assert public.json()["error"] == "invalid_client_metadata"
    client = register(site, registrar, scope="openid users:read")
    assert client["client_secret"]
    [row] = run_sql(database_url, "SELECT secret_hash FROM oauth_clients")
    assert client["client_secret"].encode() not in row["secret_hash"]  # stored hashed


def test_an_unknown_client_or_redirect_uri_gets_a_page_never_a_redirect(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str]
) -> None:
    client = register(site, registrar)
    _, challenge = pkce()
    for params in (
        {"client_id": "nobody"},
        {"redirect_uri": "https://evil.example/cb"},
        {"redirect_uri": REDIRECT + "/"},  # exact strings: not a prefix
        {"redirect_uri": REDIRECT.upper()},
    ):
        answer = authorize(site, client, challenge, **params)
        assert answer.status_code == 400, params
        assert "location" not in answer.headers
        assert "not registered" in answer.text


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "é" * 43}, "invalid_request"),
        ({"code_challenge": "a" * 44}, "invalid_request"),
        ({"scope": "openid users:write"}, "invalid_scope"),
        ({"prompt": "none"}, "login_required"),
    ],
)
def test_other_errors_go_back_to_the_application_with_state_and_issuer(
    site: TestClient, registrar: dict[str, str], params: dict[str, str], error: str
) -> None:
    client = register(site, registrar)
    _, challenge = pkce()
    query = returned(authorize(site, client, challenge, **params))
    assert query["error"] == error
    assert query["state"] == "st-123"
    assert query["iss"] == ISSUER
    assert "code" not in query


def test_a_code_works_once_and_its_replay_ends_what_it_gave(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str], database_url: str
) -> None:
    client = register(site, registrar)
    signed_in(site, smtp)
    code, verifier = code_for(site, client, scope="openid email offline_access")
    first = exchange(site, client, code, verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["nonce"] == "n-456"
    assert claims["aud"] == client["client_id"]
    userinfo = site.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))
    assert userinfo.json()["email"] == "pat@example.com"

    again = exchange(site, client, code, verifier)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # Every token of the first exchange is dead: access token and refresh token.
    assert site.get("/oauth/userinfo", headers=bearer(tokens["access_token"])).status_code == 401
    assert refresh(site, client, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    kinds = [r["kind"] for r in run_sql(database_url, "SELECT kind FROM audit_events")]
    assert "oauth.code_replayed" in kinds


def test_a_code_is_bound_to_its_client_redirect_uri_verifier_and_minute(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str], database_url: str
) -> None:
    client = register(site, registrar)
    other = register(site, registrar, client_name="Other")
    signed_in(site, smtp)
    wrongs: list[Callable[[str, str], httpx2.Response]] = [
        lambda code, verifier: exchange(site, other, code, verifier),  # another client
        lambda code, verifier: exchange(site, client, code, verifier, redirect_uri=REDIRECT + "x"),
        lambda code, _: exchange(site, client, code, pkce()[0]),  # another verifier
        lambda code, _: exchange(site, client, code, "é" * 43),  # not one
    ]
    for wrong in wrongs:
        code, verifier = code_for(site, client)
        answer = wrong(code, verifier)
        assert answer.status_code == 400
        assert answer.json()["error"] == "invalid_grant"
    code, verifier = code_for(site, client)
    run_sql(database_url, "UPDATE oauth_codes SET expires_at = now() WHERE used_at IS NULL")
    assert exchange(site, client, code, verifier).json()["error"] == "invalid_grant"


def test_a_wrong_secret_is_invalid_client(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str]
) -> None:
    client = register(site, registrar)
    signed_in(site, smtp)
    code, verifier = code_for(site, client)
    wrong = {**client, "client_secret": client["client_secret"][:-1] + "x"}
    answer = exchange(site, wrong, code, verifier)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert answer.headers["www-authenticate"].startswith("Basic")
    # The right secret in the form instead of the header it registered is refused too.
    posted = site.post(
        "/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
            "client_id": client["client_id"],
            "client_secret": client["client_secret"],
        },
    )
    assert posted.json()["error"] == "invalid_client"


def test_a_spent_refresh_token_kills_the_family(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str], database_url: str
) -> None:
    client = register(site, registrar)
    signed_in(site, smtp)
    code, verifier = code_for(site, client, scope="openid offline_access")
    first = exchange(site, client, code, verifier).json()
    second = refresh(site, client, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    replay = refresh(site, client, first["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    assert refresh(site, client, second["refresh_token"]).json()["error"] == "invalid_grant"
    assert site.get("/oauth/userinfo", headers=bearer(second["access_token"])).status_code == 401
    kinds = [r["kind"] for r in run_sql(database_url, "SELECT kind FROM audit_events")]
    assert "oauth.refresh_replayed" in kinds


def test_of_parallel_refreshes_of_one_token_at_most_one_wins(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str]
) -> None:
    """CVE-2026-1035's race (Keycloak: parallel refreshes both won): twenty refreshes of
    one token at once, each on a connection of its own."""
    client = register(site, registrar)
    signed_in(site, smtp)
    code, verifier = code_for(site, client, scope="openid offline_access")
    token = exchange(site, client, code, verifier).json()["refresh_token"]
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: refresh(site, client, token), range(20)))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 1, statuses
    assert set(statuses) == {200, 400}


def test_client_credentials_get_the_clients_scopes_scope_by_scope(
    site: TestClient, registrar: dict[str, str]
) -> None:
    client = register(
        site,
        registrar,
        grant_types=["client_credentials"],
        redirect_uris=[],
        scope="users:read",
    )
    auth = (client["client_id"], client["client_secret"])
    beyond = site.post(
        "/oauth/token", data={"grant_type": "client_credentials", "scope": "users:write"}, auth=auth
    )
    assert beyond.json()["error"] == "invalid_scope"
    tokens = site.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=auth).json()
    assert tokens["scope"] == "users:read"
    assert "refresh_token" not in tokens
    assert site.get("/users", headers=bearer(tokens["access_token"])).status_code == 200
    created = site.post("/users", json={"nickname": "x"}, headers=bearer(tokens["access_token"]))
    assert created.status_code == 403
    # Not a grant type it registered; and gone with its client.
    code = site.post("/oauth/token", data={"grant_type": "authorization_code"}, auth=auth)
    assert code.json()["error"] == "unauthorized_client"


def test_an_applications_token_acts_through_its_scopes_never_on_the_account(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str]
) -> None:
    client = register(site, registrar)
    signed_in(site, smtp)
    code, verifier = code_for(site, client)
    tokens = exchange(site, client, code, verifier).json()
    app = bearer(tokens["access_token"])
    assert site.get("/auth/sessions", headers=app).status_code == 403
    assert site.get("/users/me/mfa", headers=app).status_code == 403
    changed = site.post(
        "/users/me/email", json={"email": "thief@example.com", "password": "x"}, headers=app
    )
    assert changed.status_code == 403
    # The application's refresh token is no person's: /auth/refresh refuses it.
    code, verifier = code_for(site, client, scope="openid offline_access")
    offline = exchange(site, client, code, verifier).json()
    assert (
        site.post("/auth/refresh", json={"refresh_token": offline["refresh_token"]}).status_code
        == 401
    )


def test_consent_is_asked_once_per_scope_set_and_deny_is_access_denied(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str]
) -> None:
    client = register(site, registrar)
    signed_in(site, smtp)
    _, challenge = pkce()
    denied = consent(site, authorize(site, client, challenge), decision="deny")
    assert denied["error"] == "access_denied"
    assert denied["state"] == "st-123"
    allowed = consent(site, authorize(site, client, challenge))
    assert "code" in allowed
    assert "code" in returned(authorize(site, client, challenge))  # remembered
    more = authorize(site, client, challenge, scope="openid email profile")
    assert more.status_code == 200
    assert "Allow Acme Notes?" in more.text
    silent = returned(authorize(site, client, challenge, scope="openid profile", prompt="none"))
    assert silent["error"] == "consent_required"


def test_max_age_and_prompt_login_send_a_signed_in_person_to_sign_in_again(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str]
) -> None:
    client = register(site, registrar)
    signed_in(site, smtp)
    _, challenge = pkce()
    time.sleep(1.1)  # max_age counts whole seconds
    for params in ({"max_age": "0"}, {"prompt": "login"}):
        answer = authorize(site, client, challenge, **params)
        assert answer.status_code == 303, params
        location = answer.headers["location"]
        assert location.startswith("/account/sign-in?next=%2Foauth%2Fauthorize%3F"), params
        assert "prompt%3Dlogin" not in location  # asked once: back here, it is done
    consent(site, authorize(site, client, challenge, max_age="3600"))  # a recent sign-in
    # A sign-in asked for after a time to come is one after now: never a loop of sign-ins.
    future = authorize(site, client, challenge, signed_in_after="99999999999")
    assert future.headers["location"].startswith("/account/sign-in?")
    assert "99999999999" not in future.headers["location"]


def test_an_account_with_a_second_factor_gives_its_code_before_the_application_gets_one(
    site: TestClient, smtp: SmtpServer, registrar: dict[str, str]
) -> None:
    """The authorization endpoint signs people in through the accounts service's pipeline:
    the second factor is asked for, and the ID token says both were given."""
    client = register(site, registrar)
    pair = signed_up(site, smtp, PERSON, "Pat")
    totp, _ = enrol(site, pair)
    site.cookies.clear()
    verifier, challenge = pkce()
    to_sign_in = authorize(site, client, challenge)
    target = parse_qs(urlsplit(to_sign_in.headers["location"]).query)["next"][0]
    page = site.get(to_sign_in.headers["location"])
    form = {"csrf": csrf(site, page.text), "email": PERSON, "password": PASSWORD, "next": target}
    asked = site.post("/account/sign-in", data=form)
    assert "Authentication code" in asked.text
    mfa_token = re.search(r'name="mfa_token" value="([^"]+)"', asked.text)
    assert mfa_token
    second = {"csrf": csrf(site, asked.text), "mfa_token": mfa_token[1], "next": target}
    signed = site.post("/account/second-factor", data={**second, "code": next_code(totp)})
    assert signed.status_code == 303
    assert signed.headers["location"] == target
    query = consent(site, site.get(target))
    tokens = exchange(site, client, query["code"], verifier).json()
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp", "mfa"]


def test_a_deleted_client_stops_working_within_the_cache_time(
    monkeypatch: pytest.MonkeyPatch, smtp: SmtpServer, database_url: str
) -> None:
    """Each worker trusts a client it read for AUTH_TOKEN_CACHE_SECONDS, no longer."""
    monkeypatch.setenv("AUTH_TOKEN_CACHE_SECONDS", "0.5")
    get_settings.cache_clear()
    with TestClient(get_app()) as site:
        registrar = bearer(issue_token(database_url, "clients:write", "users:read"))
        client = register(site, registrar, grant_types=["client_credentials"], scope="users:read")
        auth = (client["client_id"], client["client_secret"])
        grant = {"grant_type": "client_credentials"}
        assert site.post("/oauth/token", data=grant, auth=auth).status_code == 200
        run_sql(database_url, "DELETE FROM oauth_clients")
        time.sleep(0.6)
        assert site.post("/oauth/token", data=grant, auth=auth).status_code == 401
    get_settings.cache_clear()
