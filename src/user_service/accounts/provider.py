"""The OpenID Provider's flows: applications (clients) registered, people's authorizations
(code, consent), the token endpoint's grants, and what an application learns of a token.
RFC 6749 and the OAuth 2.1 draft, RFC 9700 (security BCP), RFC 7591, 7636, 7662, 7009, 9207,
OpenID Connect Core 1.0 and RP-Initiated Logout 1.0.

Every way in is the accounts service's: the person signs in on the account pages (password,
second factor, passkey); this only turns a signed-in browser into a code, and a code into
tokens. An application's grant is a session (auth_sessions.client_id) whose refresh tokens
rotate as a browser's do: a spent one ends it."""

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg

from ..audit.repository import record
from ..auth import guard
from ..context import Context
from ..crypto import digest, new_token
from ..provider import repository as apps
from . import repository
from .keys import ID_TOKEN_ALGORITHMS, InvalidAccessTokenError
from .signin import SignIn

CODE_TTL = timedelta(seconds=60)
ID_TOKEN_TTL = 5 * 60
# The OpenID Connect scopes; this service's own (users:read …) are guard.SCOPES.
OIDC_SCOPES = {
    "openid": "Sign you in (your user id)",
    "profile": "Your name",
    "email": "Your email address",
    "offline_access": "Stay connected while you are away (a refresh token)",
}
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
DEFAULT_SCOPE = "openid profile email"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class OAuthError(Exception):
    """An OAuth error (RFC 6749 §5.2): its code, description and HTTP status."""

    def __init__(self, error: str, description: str, status: int = HTTPStatus.BAD_REQUEST):
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


class InvalidClientError(OAuthError):
    def __init__(self) -> None:
        super().__init__("invalid_client", "Client authentication failed.", HTTPStatus.UNAUTHORIZED)


class RedirectedError(OAuthError):
    """An error of an authorization request, sent back to the client's redirect URI."""

    def __init__(self, request: "Authorization", error: str, description: str) -> None:
        super().__init__(error, description)
        self.request = request


class UnknownClientError(Exception):
    """The client or its redirect URI is not registered: nowhere safe to send an error
    back to, so the person sees it (RFC 6749 §4.1.2.1)."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """An authorization request whose client and redirect URI are known and registered."""

    client: asyncpg.Record
    redirect_uri: str
    state: str | None
    scopes: list[str] = field(default_factory=list)
    nonce: str | None = None
    code_challenge: str = ""
    prompt: frozenset[str] = frozenset()
    max_age: int | None = None
    login_hint: str | None = None


# RFC 7636 §4.1-4.2: a verifier's characters, and an S256 challenge (SHA-256, base64url).
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


def s256(verifier: str) -> str:
    """A PKCE code challenge (RFC 7636 §4.2)."""
    sha = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(sha).rstrip(b"=").decode()


def _half_hash(token: str, algorithm: str) -> str:
    # at_hash: the left half of the token's hash by the ID token's algorithm's hash (OIDC
    # Core §3.1.3.6): SHA-256 for RS256, SHA-512 for EdDSA with Ed25519.
    hashed = (hashlib.sha512 if algorithm == "EdDSA" else hashlib.sha256)(token.encode()).digest()
    return base64.urlsafe_b64encode(hashed[: len(hashed) // 2]).rstrip(b"=").decode()


def _redirect_uri_problem(uri: object) -> str | None:
    """Why `uri` cannot be a redirect URI (https, or http on a loopback host), or None."""
    if not isinstance(uri, str) or len(uri) > 2000:
        return "a redirect URI is a string of at most 2000 characters"
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return f"{uri} has a fragment"
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return None
    return f"{uri} is neither https nor http on a loopback address"


def _words(value: object, what: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, str) or len(value) > 2000:
        raise OAuthError("invalid_client_metadata", f"{what} is a space-separated string")
    return value.split()


def _strings(metadata: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = metadata.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise OAuthError("invalid_client_metadata", f"{name} is a list of strings")
    return value


class Provider(SignIn):
    # Clients

    def known_scopes(self) -> set[str]:
        return set(OIDC_SCOPES) | set(guard.SCOPES)

    async def register_client(
        self, context: Context, metadata: dict[str, Any], *, first_party: bool = False
    ) -> dict[str, Any]:
        """Register an application (RFC 7591 metadata); its registration, with the
        client_id and, for a confidential client, the secret (shown this once). Never with a
        scope its registrant lacks; only an operator's CLI marks one first-party."""
        grant_types = _strings(metadata, "grant_types", ["authorization_code"])
        if unknown := set(grant_types) - set(GRANT_TYPES):
            raise OAuthError(
                "invalid_client_metadata", f"unsupported grant_types: {', '.join(sorted(unknown))}"
            )
        if _strings(metadata, "response_types", ["code"]) != ["code"]:
            raise OAuthError("invalid_client_metadata", "response_types can only be ['code']")
        method = metadata.get("token_endpoint_auth_method", "client_secret_basic")
        if method not in AUTH_METHODS:
            raise OAuthError(
                "invalid_client_metadata",
                f"token_endpoint_auth_method is one of {', '.join(AUTH_METHODS)}",
            )
        if method == "none" and "client_credentials" in grant_types:
            raise OAuthError(
                "invalid_client_metadata", "a public client cannot use client_credentials"
            )
        redirect_uris = _strings(metadata, "redirect_uris", [])
        logout_uris = _strings(metadata, "post_logout_redirect_uris", [])
        if "authorization_code" in grant_types and not redirect_uris:
            raise OAuthError("invalid_redirect_uri", "redirect_uris is required")
        for uri in redirect_uris + logout_uris:
            if problem := _redirect_uri_problem(uri):
                raise OAuthError("invalid_redirect_uri", problem)
        scopes = sorted(set(_words(metadata.get("scope", DEFAULT_SCOPE), "scope")))
        if unknown := set(scopes) - self.known_scopes():
            raise OAuthError(
                "invalid_client_metadata", f"unknown scopes: {', '.join(sorted(unknown))}"
            )
        beyond = set(scopes) - set(OIDC_SCOPES) - (context.scopes or set())
        if context.scopes is not None and beyond:
            details = {"action": "register a client", "lacking": sorted(beyond)}
            await record(self.db, context, "operator.refused", None, **details)
            raise OAuthError(
                "invalid_client_metadata",
                f"scope: you lack {', '.join(sorted(beyond))}, so the client cannot have it",
            )
        algorithm = metadata.get("id_token_signed_response_alg", ID_TOKEN_ALGORITHMS[0])
        if algorithm not in ID_TOKEN_ALGORITHMS:
            raise OAuthError(
                "invalid_client_metadata",
                f"id_token_signed_response_alg is one of {', '.join(ID_TOKEN_ALGORITHMS)}",
            )
        name = metadata.get("client_name") or (
            urlsplit(redirect_uris[0]).hostname if redirect_uris else ""
        )
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            raise OAuthError("invalid_client_metadata", "client_name is 1 to 100 characters")
        secret = None if method == "none" else new_token()
        async with self.db.transaction() as connection:
            client = await apps.create_client(
                connection,
                id=new_token()[:22],
                name=name,
                secret_hash=digest(secret) if secret else None,
                redirect_uris=redirect_uris,
                post_logout_redirect_uris=logout_uris,
                grant_types=grant_types,
                auth_method=method,
                scopes=scopes,
                id_token_alg=algorithm,
                first_party=first_party,
                created_by=context.actor,
            )
            await record(
                connection, context, "client.registered", None, client=client["id"], name=name
            )
        registration = self.registration(client)
        if secret:
            registration.update(client_secret=secret, client_secret_expires_at=0)
        return registration

    def registration(self, client: asyncpg.Record) -> dict[str, Any]:
        """A client's metadata, as RFC 7591 §3.2.1 answers it (never a secret)."""
        return {
            "client_id": client["id"],
            "client_id_issued_at": int(client["created_at"].timestamp()),
            "client_name": client["name"],
            "redirect_uris": client["redirect_uris"],
            "post_logout_redirect_uris": client["post_logout_redirect_uris"],
            "grant_types": client["grant_types"],
            "response_types": ["code"],
            "token_endpoint_auth_method": client["auth_method"],
            "scope": " ".join(client["scopes"]),
            "id_token_signed_response_alg": client["id_token_alg"],
        }

    async def clients(self) -> list[asyncpg.Record]:
        return await apps.clients(self.db)

    async def delete_client(self, context: Context, client_id: str) -> bool:
        """Delete an application: its grants end, its consents are forgotten."""
        async with self.db.transaction() as connection:
            deleted = await apps.delete_client(connection, client_id)
            if deleted:
                await record(connection, context, "client.deleted", None, client=client_id)
        return deleted

    async def rotate_client_secret(self, context: Context, client_id: str) -> str | None:
        """A new secret for a confidential client (the old one stops working now)."""
        secret = new_token()
        async with self.db.transaction() as connection:
            if not await apps.set_secret(connection, client_id, digest(secret)):
                return None
            await record(connection, context, "client.secret_rotated", None, client=client_id)
        return secret

    async def authenticate_client(
        self, client_id: str | None, secret: str | None, method: str
    ) -> asyncpg.Record:
        """The client that calls the token, introspection or revocation endpoint, by the
        method it registered (client_secret_basic, client_secret_post or none)."""
        client = await self.client(client_id) if client_id else None
        if client is None or client["auth_method"] != method:
            raise InvalidClientError
        if method != "none":
            given = digest(secret or "")
            if not hmac.compare_digest(given, client["secret_hash"]):
                raise InvalidClientError
        return client

    # Authorization

    async def authorization(self, params: dict[str, str]) -> Authorization:
        """The request's client and redirect URI, checked first (UnknownClientError when
        either is not registered: no redirect), then the rest (OAuthError, to redirect
        back with)."""
        client = await apps.client(self.db, params.get("client_id", ""))
        redirect_uri = params.get("redirect_uri", "")
        # Exact string comparison, never a prefix or a pattern (RFC 9700 §4.1.3).
        if client is None or redirect_uri not in client["redirect_uris"]:
            raise UnknownClientError
        state = params.get("state")
        partial = Authorization(client, redirect_uri, state)
        if params.get("request") or params.get("request_uri"):
            raise RedirectedError(
                partial, "request_not_supported", "Request objects are not supported."
            )
        if params.get("response_type") != "code":
            raise RedirectedError(
                partial, "unsupported_response_type", "response_type must be code."
            )
        if "authorization_code" not in client["grant_types"]:
            raise RedirectedError(
                partial, "unauthorized_client", "The client may not use the code flow."
            )
        if params.get("response_mode", "query") != "query":
            raise RedirectedError(partial, "invalid_request", "response_mode must be query.")
        challenge = params.get("code_challenge", "")
        if params.get("code_challenge_method") != "S256" or not CHALLENGE.fullmatch(challenge):
            raise RedirectedError(partial, "invalid_request", "PKCE is required, with S256.")
        scopes = params.get("scope", "").split()
        if not scopes or set(scopes) - set(client["scopes"]):
            raise RedirectedError(
                partial, "invalid_scope", "The client may not ask for that scope."
            )
        prompt = frozenset(params.get("prompt", "").split())
        if "none" in prompt and len(prompt) > 1:
            raise RedirectedError(partial, "invalid_request", "prompt=none goes alone.")
        max_age = params.get("max_age")
        if max_age is not None and not (max_age.isdigit() and len(max_age) < 10):
            raise RedirectedError(partial, "invalid_request", "max_age is a number of seconds.")
        nonce = params.get("nonce")
        if nonce is not None and len(nonce) > 500:
            raise RedirectedError(partial, "invalid_request", "nonce is too long.")
        return Authorization(
            client,
            redirect_uri,
            state,
            sorted(set(scopes)),
            nonce,
            challenge,
            prompt,
            int(max_age) if max_age is not None else None,
            params.get("login_hint"),
        )

    def needs_sign_in(self, request: Authorization, signed_in_at: datetime | None) -> bool:
        """Whether the person must sign in (again) first: nobody is, or max_age has passed
        since they did."""
        if signed_in_at is None:
            return True
        if request.max_age is None:
            return False
        return time.time() - signed_in_at.timestamp() > request.max_age

    async def grantable(
        self, request: Authorization, user_id: int, scopes: frozenset[str]
    ) -> list[str]:
        """What the person can give the client: the OpenID scopes it asks for, and of this
        service's own only those the person's session holds (`scopes`)."""
        return [s for s in request.scopes if s in OIDC_SCOPES or s in scopes]

    async def consented(self, request: Authorization, user_id: int, grant: list[str]) -> bool:
        """Whether the person allowed the client these scopes before (or it is first-party)."""
        if request.client["first_party"]:
            return True
        allowed = await apps.consent(self.db, user_id, request.client["id"])
        return allowed is not None and set(grant) <= set(allowed)

    async def issue_code(
        self,
        context: Context,
        request: Authorization,
        *,
        user_id: int,
        browser_session: UUID,
        grant: list[str],
        signed_in_at: datetime,
        amr: list[str],
        consent: bool,
    ) -> str:
        """A code for the signed-in person (their consent recorded first, when given now)."""
        client_id = request.client["id"]
        async with self.db.transaction() as connection:
            if consent:
                await apps.add_consent(connection, user_id, client_id, grant)
                await record(
                    connection, context, "consent.granted", user_id, client=client_id, scopes=grant
                )
            return await apps.new_code(
                connection,
                CODE_TTL,
                client_id=client_id,
                user_id=user_id,
                browser_session=browser_session,
                redirect_uri=request.redirect_uri,
                code_challenge=request.code_challenge,
                scopes=grant,
                nonce=request.nonce,
                auth_time=signed_in_at,
                amr=amr,
            )

    async def refused_consent(self, context: Context, request: Authorization, user_id: int) -> None:
        await record(self.db, context, "consent.denied", user_id, client=request.client["id"])

    # The token endpoint

    async def exchange_code(
        self, context: Context, client: asyncpg.Record, form: dict[str, str]
    ) -> dict[str, Any]:
        """authorization_code: a code, once, for its client, redirect URI and verifier. A
        second use ends every token the first one gave (RFC 6749 §4.1.2)."""
        code = form.get("code", "")
        async with self.db.transaction() as connection:
            used = await apps.use_code(connection, code, client["id"])
        if used is None:
            await self._refuse_code_replay(context, code)
            raise OAuthError("invalid_grant", "The code is not valid: used, expired or unknown.")
        if form.get("redirect_uri") != used["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri is not the authorization's.")
        verifier = form.get("code_verifier", "")
        if not VERIFIER.fullmatch(verifier) or not hmac.compare_digest(
            s256(verifier), used["code_challenge"]
        ):
            raise OAuthError("invalid_grant", "The code_verifier does not match.")
        account = await repository.by_id(self.db, used["user_id"])
        if account is None or account["disabled_at"] is not None:
            raise OAuthError("invalid_grant", "The account is gone or disabled.")
        async with self.db.transaction() as connection:
            grant_id = await repository.open_session(
                connection,
                user_id=used["user_id"],
                ttl=self.settings.auth_refresh_ttl,
                client_address=context.client_address,
                user_agent=context.user_agent,
                amr=used["amr"],
                client_id=client["id"],
                scopes=used["scopes"],
            )
            await apps.set_code_grant(connection, code, grant_id)
            refresh = None
            if "offline_access" in used["scopes"] and "refresh_token" in client["grant_types"]:
                refresh = await repository.issue_refresh(connection, grant_id)
        tokens = await self._tokens(
            client, used["user_id"], grant_id, used["scopes"], used["amr"], refresh
        )
        if "openid" in used["scopes"]:
            tokens["id_token"] = await self._id_token(client, account, used, tokens["access_token"])
        return tokens

    async def _refuse_code_replay(self, context: Context, code: str) -> None:
        async with self.db.transaction() as connection:
            spent = await apps.spent_code(connection, code)
            if spent is None:
                return
            if spent["grant_id"] is not None:
                await repository.revoke_session(connection, spent["grant_id"])
            await record(
                connection,
                context,
                "oauth.code_replayed",
                spent["user_id"],
                client=spent["client_id"],
            )

    async def _tokens(
        self,
        client: asyncpg.Record,
        user_id: int,
        grant_id: UUID,
        scopes: list[str],
        amr: list[str],
        refresh: str | None,
    ) -> dict[str, Any]:
        access = await self.signer.issue(
            user_id=user_id, session_id=grant_id, scopes=scopes, amr=amr, client_id=client["id"]
        )
        tokens: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.signer.ttl,
            "scope": " ".join(scopes),
        }
        if refresh:
            tokens["refresh_token"] = refresh
        return tokens

    async def _id_token(
        self, client: asyncpg.Record, account: asyncpg.Record, code: asyncpg.Record, access: str
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.signer.issuer,
            "sub": str(account["user_id"]),
            "aud": client["id"],
            "iat": now,
            "exp": now + ID_TOKEN_TTL,
            "auth_time": int(code["auth_time"].timestamp()),
            "amr": code["amr"],
            "sid": str(code["browser_session"]),
            "at_hash": _half_hash(access, client["id_token_alg"]),
        }
        if code["nonce"] is not None:
            claims["nonce"] = code["nonce"]
        claims.update(_person(account, code["scopes"]))
        return await self.signer.sign(claims, client["id_token_alg"])

    async def refresh_grant(
        self, context: Context, client: asyncpg.Record, form: dict[str, str]
    ) -> dict[str, Any]:
        """refresh_token: rotated at every use; a spent one ends the grant, every token
        of it (RFC 9700 §4.14.2). Decided in one UPDATE: of parallel uses one wins."""
        if "refresh_token" not in client["grant_types"]:
            raise OAuthError("unauthorized_client", "The client may not use refresh tokens.")
        token = form.get("refresh_token", "")
        rotated = await self.rotate_refresh(token, client["id"])
        if rotated is None:
            replayed = await self.end_replayed(context, token, client["id"])
            if replayed is not None:
                await record(
                    self.db,
                    context,
                    "oauth.refresh_replayed",
                    replayed["user_id"],
                    client=client["id"],
                )
            raise OAuthError("invalid_grant", "The refresh token is not valid.")
        used, refresh = rotated
        return await self._tokens(
            client, used["user_id"], used["session_id"], used["granted"], used["amr"], refresh
        )

    async def client_credentials(
        self, client: asyncpg.Record, form: dict[str, str]
    ) -> dict[str, Any]:
        """client_credentials: the application's own access token, with its scopes (of this
        service's; none of a person's)."""
        if "client_credentials" not in client["grant_types"] or client["secret_hash"] is None:
            raise OAuthError("unauthorized_client", "The client may not use client_credentials.")
        own = [s for s in client["scopes"] if s not in OIDC_SCOPES]
        asked = form.get("scope")
        scopes = sorted(set(asked.split())) if asked else own
        if set(scopes) - set(own):
            raise OAuthError("invalid_scope", "The client may not ask for that scope.")
        access = await self.signer.issue(
            user_id=None, session_id=None, scopes=scopes, client_id=client["id"]
        )
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.signer.ttl,
            "scope": " ".join(scopes),
        }

    # What an application learns of a token

    async def _signed(self, token: str) -> dict[str, Any] | None:
        """The claims of an unexpired access token we signed, or None."""
        if not self.signer.ours(token):
            return None
        try:
            return await self.signer.verify(token)
        except InvalidAccessTokenError:
            return None

    async def access(self, token: str) -> dict[str, Any] | None:
        """The claims of a live access token of ours, or None (expired, forged, its grant
        ended, its client deleted)."""
        claims = await self._signed(token)
        if claims is None:
            return None
        if "sid" in claims:
            session = await repository.session_scopes(
                self.db, UUID(claims["sid"]), int(claims["sub"])
            )
            return claims if session is not None else None
        client = await self.client(str(claims.get("client_id")))
        return claims if client is not None else None

    async def userinfo(self, token: str) -> dict[str, Any] | None:
        """The person's claims for an application's access token with openid (OIDC Core
        §5.3); None when the token cannot have them. One query: the grant, with the account."""
        claims = await self._signed(token)
        if claims is None:
            return None
        scopes = str(claims.get("scope", "")).split()
        if "openid" not in scopes or "client_id" not in claims or "sid" not in claims:
            return None
        grant = await apps.grant(self.db, UUID(claims["sid"]))
        if grant is None or str(grant["user_id"]) != claims["sub"]:
            return None
        return {"sub": claims["sub"], **_person(grant, scopes)}

    async def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: whether the token is live, and what it is."""
        claims = await self.access(token)
        if claims is not None:
            answer: dict[str, Any] = {
                "active": True,
                "token_type": "access_token",
                **{
                    k: claims[k]
                    for k in ("scope", "sub", "exp", "iat", "iss", "aud", "jti")
                    if k in claims
                },
            }
            if "client_id" in claims:
                answer["client_id"] = claims["client_id"]
            return answer
        grant = await apps.refresh_grant(self.db, token)
        if grant is None:
            return {"active": False}
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": grant["client_id"],
            "sub": str(grant["user_id"]),
            "scope": " ".join(grant["scopes"]),
            "iss": self.signer.issuer,
            "iat": int(grant["iat"].timestamp()),
            "exp": int(grant["expires_at"].timestamp()),
        }

    async def revoke(self, context: Context, client: asyncpg.Record, token: str) -> None:
        """RFC 7009: end the grant a token of this client belongs to (refresh or access
        token alike). Anything else is ignored: the answer is the same."""
        grant_id = None
        claims = await self.access(token)
        if claims is not None and claims.get("client_id") == client["id"] and "sid" in claims:
            grant_id = UUID(claims["sid"])
        else:
            grant = await apps.refresh_grant(self.db, token)
            if grant is not None and grant["client_id"] == client["id"]:
                grant_id = grant["id"]
        if grant_id is not None:
            async with self.db.transaction() as connection:
                await self._end(connection, context, grant_id, reason=f"revoked by {client['id']}")

    # Logout and connected applications

    async def logout_hint(self, token: str) -> dict[str, Any] | None:
        """The claims of an ID token we signed, even expired (RP-initiated logout's
        id_token_hint), or None."""
        try:
            return await self.signer.verified(
                token,
                ID_TOKEN_ALGORITHMS,
                options={"verify_exp": False, "verify_aud": False, "require": ["aud", "sub"]},
            )
        except InvalidAccessTokenError:
            return None

    async def connected_apps(self, user_id: int) -> list[asyncpg.Record]:
        return await apps.connected(self.db, user_id)

    async def disconnect(self, context: Context, user_id: int, client_id: str) -> bool:
        """Forget the person's consent to an application and end its grants."""
        async with self.db.transaction() as connection:
            done = await apps.disconnect(connection, user_id, client_id)
            if done:
                await record(connection, context, "consent.revoked", user_id, client=client_id)
        return done


def _person(account: asyncpg.Record, scopes: list[str]) -> dict[str, Any]:
    """The person's claims that `scopes` allow (OIDC Core §5.4), from their account."""
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims.update(
            email=account["email"], email_verified=account["email_verified_at"] is not None
        )
    if "profile" in scopes:
        claims["name"] = account["nickname"]
    return claims
