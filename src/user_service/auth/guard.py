"""Every caller presents `Authorization: Bearer <token>`: one of our API tokens
(`user-service tokens create`) or, when configured, a JWT from an OpenID Connect identity
provider. A token grants scopes; each route requires one (`require`)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from uuid import UUID

from fastapi import Request, Security
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from ..config import Settings
from ..crypto import digest
from ..errors import RETRY_AFTER_SECONDS, AppError
from ..http import client_address
from . import tokens
from .limits import FailureLimit
from .oidc import InvalidTokenError, JwtVerifier, ProviderUnavailableError

# Every scope a route can require, with what it allows (filled in by `require`).
SCOPES: dict[str, str] = {}

_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: `token:<name>`, `jwt:<subject>`, `user:<id>` (a signed-in person,
    in one of their sessions, or an application they allowed: `client_id`) or
    `client:<id>` (an application on its own), and what they may do."""

    name: str
    scopes: frozenset[str]
    expires_at: float | None = None  # Unix time
    user_id: int | None = None
    session_id: UUID | None = None
    # An operator's account whose session has one factor where two are required: its scopes
    # wait until it signs in with two (AUTH_OPERATOR_MFA).
    needs_second_factor: bool = False
    client_id: str | None = None  # the application acting (the OpenID Provider's tokens)


class UnauthenticatedError(AppError):
    status_code = HTTPStatus.UNAUTHORIZED

    def __init__(self, detail: str, *, token_given: bool = True) -> None:
        # RFC 6750: a request without a token gets the bare challenge.
        challenge = 'Bearer realm="user-service"'
        if token_given:
            challenge += ', error="invalid_token"'
        super().__init__(detail, {"WWW-Authenticate": challenge})


class ForbiddenError(AppError):
    status_code = HTTPStatus.FORBIDDEN

    def __init__(self, scope: str) -> None:
        challenge = f'Bearer realm="user-service", error="insufficient_scope", scope="{scope}"'
        super().__init__(
            f"The token does not grant the {scope} scope.", {"WWW-Authenticate": challenge}
        )


class SecondFactorNeededError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    type = "/problems/mfa-enrolment-required"
    message = (
        "This account's scopes need a sign-in with a second factor: set one up "
        "(/users/me/mfa), then sign in with it."
    )


class TooManyFailuresError(AppError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed authentications from this address; retry in {retry_after}s.",
            {"Retry-After": str(retry_after)},
        )


class ProviderDownError(AppError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self) -> None:
        super().__init__(
            "The identity provider's keys are unavailable; try again shortly.",
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class Authenticator:
    """Turns a request's bearer token into a Principal, or refuses it."""

    def __init__(self, settings: Settings) -> None:
        self.failures = FailureLimit(settings.auth_failures_per_minute)
        self.cache_seconds = settings.auth_token_cache_seconds
        self.jwt = None
        if settings.auth_jwks_url and settings.auth_issuer and settings.auth_audience:
            self.jwt = JwtVerifier(
                str(settings.auth_jwks_url),
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                leeway=settings.auth_leeway,
                refetch_interval=settings.auth_jwks_refetch_interval,
            )
        # Set by the accounts module: a signed-in person's access token as a Principal, or
        # None when the token is not one of ours.
        self.people: Callable[[Request, str], Awaitable[Principal | None]] | None = None
        self._verified: dict[bytes, tuple[float, Principal]] = {}
        self._checking: dict[bytes, asyncio.Future[Principal]] = {}

    async def authenticate(self, request: Request) -> Principal:
        address = client_address(request) or "unknown"
        # Refused before the token is looked at: a blocked guesser learns nothing more.
        retry_after = self.failures.retry_after(address)
        if retry_after is not None:
            raise TooManyFailuresError(retry_after)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthenticatedError(
                "Send a token as Authorization: Bearer <token>.", token_given=False
            )
        try:
            principal = await self._verify(request, token.strip())
            if principal.expires_at is not None and principal.expires_at <= time.time():
                raise UnauthenticatedError("The token has expired.")
        except UnauthenticatedError:
            self.failures.record(address)
            raise
        return principal

    async def _verify(self, request: Request, token: str) -> Principal:
        key = digest(token)
        cached = self._verified.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        # One check per token at a time: concurrent requests share its result.
        checking = self._checking.get(key)
        if checking is None:
            checking = asyncio.ensure_future(self._check(request, token))
            self._checking[key] = checking
            checking.add_done_callback(lambda _: self._checking.pop(key, None))
        principal = await asyncio.shield(checking)
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[key] = (time.monotonic(), principal)
        return principal

    async def _check(self, request: Request, token: str) -> Principal:
        if token.startswith(tokens.PREFIX):
            row = await tokens.use(request.app.state.db, token)
            if row is None:
                raise UnauthenticatedError("The token is not valid.")
            if row["revoked_at"] is not None:
                raise UnauthenticatedError("The token has been revoked.")
            expires_at = row["expires_at"].timestamp() if row["expires_at"] else None
            return Principal(f"token:{row['name']}", frozenset(row["scopes"]), expires_at)
        if self.people is not None:
            person = await self.people(request, token)
            if person is not None:
                return person
        if self.jwt is None:
            raise UnauthenticatedError("The token is not valid.")
        try:
            claims = await self.jwt.verify(token)
        except InvalidTokenError as exc:
            raise UnauthenticatedError(str(exc)) from None
        except ProviderUnavailableError:
            raise ProviderDownError from None
        expires_at = float(claims["exp"]) + self.jwt.leeway  # as the decoder allowed
        return Principal(f"jwt:{claims['sub']}", _jwt_scopes(claims), expires_at)


def _jwt_scopes(claims: dict[str, Any]) -> frozenset[str]:
    # `scope` is a space-separated string (RFC 8693); `scp` a list or a string (Azure AD, Okta).
    scopes = claims.get("scope", claims.get("scp", ""))
    return frozenset(scopes.split() if isinstance(scopes, str) else map(str, scopes))


class Bearer(SecurityBase):
    """The dependency behind `require`; being a SecurityBase, OpenAPI documents it."""

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.scheme_name = "bearer"
        self.model = HTTPBearerModel(
            description="An API token (`user-service tokens create`) or, when configured, "
            "a JWT from the identity provider. Each operation lists the scope it needs."
        )

    async def __call__(self, request: Request) -> Principal:
        authenticator: Authenticator = request.app.state.auth
        principal = await authenticator.authenticate(request)
        request.state.principal = principal  # the access log names the caller
        if self.scope not in principal.scopes:
            if principal.needs_second_factor:
                raise SecondFactorNeededError
            raise ForbiddenError(self.scope)
        return principal


def require(scope: str, description: str) -> Any:
    """A route dependency: the caller's token must grant `scope`."""
    SCOPES[scope] = description
    return Security(Bearer(scope), scopes=[scope])


def install(app: Any, settings: Settings) -> None:
    app.state.auth = Authenticator(settings)
