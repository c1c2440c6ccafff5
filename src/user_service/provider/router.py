"""The OpenID Provider's endpoints for applications: discovery, dynamic registration, the
token endpoint, userinfo, introspection and revocation. Their errors are OAuth's JSON
(`error`, `error_description`; RFC 6749 §5.2), not problem+json: that is what clients parse.
Each is one call on the accounts service."""

import base64
import binascii
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from ..accounts.keys import ID_TOKEN_ALGORITHMS
from ..accounts.provider import AUTH_METHODS, GRANT_TYPES, OIDC_SCOPES, OAuthError
from ..accounts.service import Service, of
from ..auth import guard
from ..context import from_request
from . import REGISTER_CLIENTS

# Not in /openapi.json: these speak OAuth's wire format (form bodies, RFC 6749 errors), not
# the API's, and their own discovery document describes them.
wellknown = APIRouter(include_in_schema=False)
oauth = APIRouter(prefix="/oauth", include_in_schema=False)


def metadata(issuer: str) -> dict[str, Any]:
    """The provider's metadata (OpenID Connect Discovery 1.0, RFC 8414)."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "userinfo_endpoint": f"{issuer}/oauth/userinfo",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "registration_endpoint": f"{issuer}/oauth/register",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "end_session_endpoint": f"{issuer}/oauth/logout",
        "scopes_supported": sorted(set(OIDC_SCOPES) | set(guard.SCOPES)),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGORITHMS),
        "token_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS[:2]),
        "revocation_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "sid",
            "at_hash",
            "email",
            "email_verified",
            "name",
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "claims_parameter_supported": False,
    }


@wellknown.get("/.well-known/openid-configuration")
@wellknown.get("/.well-known/oauth-authorization-server")
async def discovery(accounts: Service) -> JSONResponse:
    """The OpenID Provider's metadata: its endpoints, scopes, grants and algorithms."""
    return JSONResponse(metadata(accounts.signer.issuer))


def _oauth_error(exc: OAuthError) -> JSONResponse:
    headers = {}
    if exc.status == HTTPStatus.UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Basic realm="user-service"'
    body = {"error": exc.error, "error_description": exc.description}
    return JSONResponse(body, exc.status, headers)


@oauth.post("/register", status_code=201, dependencies=[REGISTER_CLIENTS])
async def register(request: Request, accounts: Service) -> JSONResponse:
    """Register an application (RFC 7591): its client_id and, for a confidential client,
    its client_secret, shown this once. Needs clients:write; never a scope the caller
    lacks."""
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _oauth_error(OAuthError("invalid_client_metadata", "The body is a JSON object."))
    try:
        client = await accounts.register_client(from_request(request), body)
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(client, 201)


async def _form(request: Request) -> dict[str, str]:
    """The posted form; a parameter sent twice is an error (RFC 6749 §3.1)."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != (
        "application/x-www-form-urlencoded"
    ):
        raise OAuthError("invalid_request", "Send an application/x-www-form-urlencoded body.")
    data = await request.form()
    form: dict[str, str] = {}
    for name, value in data.multi_items():
        if name in form or not isinstance(value, str):
            raise OAuthError("invalid_request", f"{name} is sent more than once.")
        form[name] = value
    return form


async def _client(request: Request, form: dict[str, str]) -> Any:
    """The calling client, by HTTP Basic (client_secret_basic), the form's client_secret
    (client_secret_post), or its client_id alone (none: a public client)."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Malformed Basic credentials.", 401) from None
        client_id, _, secret = decoded.partition(":")
        # RFC 6749 §2.3.1: both are form-urlencoded before Basic encoding.
        return await of(request).authenticate_client(
            unquote(client_id), unquote(secret), "client_secret_basic"
        )
    if "client_secret" in form:
        return await of(request).authenticate_client(
            form.get("client_id"), form["client_secret"], "client_secret_post"
        )
    return await of(request).authenticate_client(form.get("client_id"), None, "none")


@oauth.post("/token")
async def token(request: Request, accounts: Service) -> Response:
    """The token endpoint: authorization_code (with PKCE), refresh_token (rotated),
    client_credentials."""
    try:
        form = await _form(request)
        client = await _client(request, form)
        context = from_request(request, f"client:{client['id']}")
        grant_type = form.get("grant_type")
        if grant_type not in client["grant_types"] and grant_type in GRANT_TYPES:
            raise OAuthError("unauthorized_client", f"The client may not use {grant_type}.")
        if grant_type == "authorization_code":
            tokens = await accounts.exchange_code(context, client, form)
        elif grant_type == "refresh_token":
            tokens = await accounts.refresh_grant(context, client, form)
        elif grant_type == "client_credentials":
            tokens = await accounts.client_credentials(client, form)
        else:
            raise OAuthError("unsupported_grant_type", "grant_type is not supported.")
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(tokens, headers={"Pragma": "no-cache"})


def _bearer(request: Request, form: dict[str, str] | None) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (form or {}).get("access_token")


@oauth.get("/userinfo")
@oauth.post("/userinfo")
async def userinfo(request: Request, accounts: Service) -> Response:
    """The signed-in person's claims, by the scopes the access token holds (OIDC Core
    §5.3)."""
    form = None
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    token = _bearer(request, form)
    claims = await accounts.userinfo(token) if token else None
    if claims is None:
        challenge = 'Bearer realm="user-service"'
        if token:
            challenge += ', error="invalid_token"'
        return Response(status_code=401, headers={"WWW-Authenticate": challenge})
    return JSONResponse(claims)


@oauth.post("/introspect")
async def introspect(request: Request, accounts: Service) -> Response:
    """Whether a token is live, and what it is (RFC 7662): for confidential clients."""
    try:
        form = await _form(request)
        client = await _client(request, form)
        if client["secret_hash"] is None:
            raise OAuthError("invalid_client", "A public client may not introspect.", 401)
    except OAuthError as exc:
        return _oauth_error(exc)
    return JSONResponse(await accounts.introspect(form.get("token", "")))


@oauth.post("/revoke")
async def revoke(request: Request, accounts: Service) -> Response:
    """Revoke a refresh or access token of the calling client, ending its grant (RFC
    7009). Any token, known or not, gets the same 200."""
    try:
        form = await _form(request)
        client = await _client(request, form)
    except OAuthError as exc:
        return _oauth_error(exc)
    context = from_request(request, f"client:{client['id']}")
    await accounts.revoke(context, client, form.get("token", ""))
    return Response(status_code=200)
