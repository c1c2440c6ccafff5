"""JWTs from an identity provider, verified against its JWKS, served here by a local HTTP
server with keys the tests generate."""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support import bearer
from tests.users.test_router import assert_problem
from user_service.config import get_settings, get_settings_or_exit
from user_service.main import get_app

ISSUER = "https://idp.example/realms/test"
AUDIENCE = "user-service"


class IdentityProvider:
    """A JWKS endpoint with keys it can sign with; counts the fetches it serves."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key
        self.published: list[str] = []  # the kids the JWKS lists
        self.fetches = 0
        self.down = False
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                if provider.down:
                    self.send_error(503)
                    return
                body = json.dumps({"keys": provider.jwks()}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/certs"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def add_key(self, kid: str, kind: str = "RSA", publish: bool = True) -> None:
        private = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if kind == "RSA"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.keys[kid] = private
        if publish:
            self.published.append(kid)

    def jwks(self) -> list[dict[str, Any]]:
        keys = []
        for kid in self.published:
            public = self.keys[kid].public_key()
            algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
            keys.append({**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"})
        return keys

    def sign(self, kid: str, headers: dict[str, Any] | None = None, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + 300,
            "scope": "openid users:read users:write",
            **overrides,
        }
        claims = {key: value for key, value in claims.items() if value is not None}
        key = self.keys[kid]
        algorithm = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, **(headers or {})})

    def public_pem(self, kid: str) -> bytes:
        public = self.keys[kid].public_key()
        return public.public_bytes(  # type: ignore[no-any-return]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityProvider]:
    idp = IdentityProvider()
    idp.add_key("rsa-1")
    idp.add_key("ec-1", kind="EC")
    monkeypatch.setenv("AUTH_JWKS_URL", idp.url)
    monkeypatch.setenv("AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("AUTH_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("AUTH_JWKS_REFETCH_INTERVAL", "0")
    get_settings.cache_clear()
    yield idp
    monkeypatch.undo()
    get_settings.cache_clear()
    idp.http.shutdown()
    idp.http.server_close()


@pytest.fixture
def app_client(provider: IdentityProvider) -> Iterator[TestClient]:
    with TestClient(get_app(), raise_server_exceptions=False) as client:
        yield client


def valid_claims(scope: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": now + 300, "scope": scope}


def segment(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize("kid", ["rsa-1", "ec-1"])
def test_valid_jwt_grants_its_scopes(
    app_client: TestClient, provider: IdentityProvider, kid: str
) -> None:
    token = provider.sign(kid)
    created = app_client.post("/users", json={"name": "from idp"}, headers=bearer(token))
    assert created.status_code == 201, created.text
    read = app_client.get(f"/users/{created.json()['id']}", headers=bearer(token))
    assert read.json()["nickname"] == "from idp"


@pytest.mark.parametrize(
    "claims", [{"scp": ["users:read", "users:write"]}, {"scp": "users:read users:write"}]
)
def test_scp_claim_grants_scopes_too(
    app_client: TestClient, provider: IdentityProvider, claims: dict[str, Any]
) -> None:
    token = provider.sign("rsa-1", scope=None, **claims)
    assert app_client.post("/users", json={"name": "x"}, headers=bearer(token)).status_code == 201


def test_jwt_lacking_the_scope_is_403(app_client: TestClient, provider: IdentityProvider) -> None:
    token = provider.sign("rsa-1", scope="openid users:read")
    assert app_client.get("/users", headers=bearer(token)).status_code == 200
    assert_problem(app_client.post("/users", json={"name": "x"}, headers=bearer(token)), 403)


def test_clock_skew_within_the_leeway_is_tolerated(
    app_client: TestClient, provider: IdentityProvider
) -> None:
    token = provider.sign("rsa-1", exp=int(time.time()) - 5, nbf=int(time.time()) + 5)
    assert app_client.get("/users", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    ("case", "claims", "reason"),
    [
        ("expired", {"exp": int(time.time()) - 3600}, "expired"),
        ("not yet valid", {"nbf": int(time.time()) + 3600}, "not yet valid"),
        ("wrong audience", {"aud": "another-service"}, "Audience"),
        ("wrong issuer", {"iss": "https://evil.example"}, "issuer"),
        ("no expiry", {"exp": None}, "exp"),
        ("no subject", {"sub": None}, "sub"),
    ],
)
def test_jwt_with_bad_claims_is_401(
    app_client: TestClient,
    provider: IdentityProvider,
    case: str,
    claims: dict[str, Any],
    reason: str,
) -> None:
    response = app_client.get("/users", headers=bearer(provider.sign("rsa-1", **claims)))
    body = assert_problem(response, 401)
    assert reason in str(body["detail"]), (case, body)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_forged_signature_is_401(app_client: TestClient, provider: IdentityProvider) -> None:
    provider.add_key("attacker", publish=False)
    # Signed by the attacker's key, claiming to be the provider's.
    forged = provider.sign("attacker", headers={"kid": "rsa-1"})
    assert_problem(app_client.get("/users", headers=bearer(forged)), 401)


def test_tampered_claims_are_401(app_client: TestClient, provider: IdentityProvider) -> None:
    header, _, signature = provider.sign("rsa-1", scope="users:read").split(".")
    escalated = segment(valid_claims("users:write"))
    response = app_client.post(
        "/users", json={"name": "x"}, headers=bearer(f"{header}.{escalated}.{signature}")
    )
    assert_problem(response, 401)


def test_alg_none_is_401(app_client: TestClient, provider: IdentityProvider) -> None:
    payload = segment(valid_claims("users:read"))
    for alg in ("none", "None", "NONE"):
        unsigned = f"{segment({'alg': alg, 'typ': 'JWT', 'kid': 'rsa-1'})}.{payload}."
        body = assert_problem(app_client.get("/users", headers=bearer(unsigned)), 401)
        assert "not accepted" in str(body["detail"])


def test_hmac_signed_with_the_public_key_is_401(
    app_client: TestClient, provider: IdentityProvider
) -> None:
    """The RS256/HS256 confusion: the public key used as an HMAC secret."""
    header = segment({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"})
    payload = segment(valid_claims("users:read"))
    mac = hmac.new(provider.public_pem("rsa-1"), f"{header}.{payload}".encode(), hashlib.sha256)
    signature = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()
    response = app_client.get("/users", headers=bearer(f"{header}.{payload}.{signature}"))
    body = assert_problem(response, 401)
    assert "HS256" in str(body["detail"])


def test_key_type_must_match_the_algorithm(
    app_client: TestClient, provider: IdentityProvider
) -> None:
    # An EC-signed token naming the RSA key's id.
    token = provider.sign("ec-1", headers={"kid": "rsa-1"})
    assert_problem(app_client.get("/users", headers=bearer(token)), 401)


@pytest.mark.parametrize("token", ["eyJhbGciOiJSUzI1NiJ9.garbage", "a.b.c", "eyJ.eyJ.sig"])
def test_malformed_jwt_is_401(app_client: TestClient, token: str) -> None:
    assert_problem(app_client.get("/users", headers=bearer(token)), 401)


def test_rotated_key_is_fetched_on_first_sight(
    app_client: TestClient, provider: IdentityProvider
) -> None:
    assert app_client.get("/users", headers=bearer(provider.sign("rsa-1"))).status_code == 200
    fetches = provider.fetches
    provider.add_key("rsa-2")

    assert app_client.get("/users", headers=bearer(provider.sign("rsa-2"))).status_code == 200
    assert provider.fetches == fetches + 1
    # Known keys are served from the cache.
    assert app_client.get("/users", headers=bearer(provider.sign("rsa-1"))).status_code == 200
    assert provider.fetches == fetches + 1


def test_unknown_key_ids_do_not_hammer_the_provider(
    provider: IdentityProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTH_JWKS_REFETCH_INTERVAL", "60")
    get_settings.cache_clear()
    provider.add_key("unpublished", publish=False)
    with TestClient(get_app()) as client:
        assert client.get("/users", headers=bearer(provider.sign("rsa-1"))).status_code == 200
        for n in range(10):
            token = provider.sign("unpublished", headers={"kid": f"made-up-{n}"})
            body = assert_problem(client.get("/users", headers=bearer(token)), 401)
            assert "signing key is unknown" in str(body["detail"])
    assert provider.fetches == 1  # at most one fetch per AUTH_JWKS_REFETCH_INTERVAL


def test_provider_down_is_503_then_recovers(
    app_client: TestClient, provider: IdentityProvider
) -> None:
    provider.down = True
    response = app_client.get("/users", headers=bearer(provider.sign("rsa-1")))
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) > 0

    provider.down = False
    assert app_client.get("/users", headers=bearer(provider.sign("rsa-1"))).status_code == 200


def test_api_tokens_still_work_beside_jwts(app_client: TestClient, token: str) -> None:
    assert app_client.get("/users", headers=bearer(token)).status_code == 200


def test_incomplete_oidc_settings_are_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_JWKS_URL", "https://idp.example/certs")
    monkeypatch.delenv("AUTH_ISSUER", raising=False)
    monkeypatch.delenv("AUTH_AUDIENCE", raising=False)
    get_settings.cache_clear()
    with pytest.raises(SystemExit) as exited:
        get_settings_or_exit()
    monkeypatch.undo()
    get_settings.cache_clear()
    assert "AUTH_ISSUER, AUTH_AUDIENCE" in str(exited.value)
