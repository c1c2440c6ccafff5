"""Bearer JWTs from an OpenID Connect identity provider, checked against its JWKS."""

import asyncio
import json
import logging
import time
import urllib.request
from typing import Any

import jwt

logger = logging.getLogger(__name__)

# Asymmetric only: accepting HS* would let anyone holding the public key sign tokens.
ALGORITHMS = ("RS256", "ES256")
JWKS_MAX_AGE = 3600.0  # seconds; keys the provider has retired stop working within this


class InvalidTokenError(Exception):
    """The JWT is not acceptable; the message says why."""


class ProviderUnavailableError(Exception):
    """The identity provider's keys could not be fetched."""


class JwtVerifier:
    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str,
        leeway: float,
        refetch_interval: float,
    ) -> None:
        self.jwks_url = jwks_url
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.refetch_interval = refetch_interval
        self._keys: list[jwt.PyJWK] | None = None
        self._fetched_at = 0.0  # monotonic time of the last successful fetch
        self._attempted_at = -float("inf")  # ... and of the last attempt
        self._lock = asyncio.Lock()

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, once its signature, issuer, audience and times check out."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidTokenError("The token is not valid.") from None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            raise InvalidTokenError(f"Tokens signed with {algorithm} are not accepted.")
        key = await self._key(header.get("kid"), algorithm)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidTokenError(f"The token is not valid: {exc}.") from None
        return claims

    async def _key(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        # Fetches are spaced by AUTH_JWKS_REFETCH_INTERVAL: forged key ids, or a provider
        # that is down, must not turn every request into a fetch.
        may_fetch = time.monotonic() - self._attempted_at >= self.refetch_interval
        if may_fetch and (self._keys is None or time.monotonic() - self._fetched_at > JWKS_MAX_AGE):
            await self._refresh()
            may_fetch = False
        if self._keys is None:
            raise ProviderUnavailableError
        key = self._find(kid, algorithm)
        if key is None and may_fetch:
            await self._refresh()  # the provider may have rotated its keys
            key = self._find(kid, algorithm)
        if key is None:
            raise InvalidTokenError("The token's signing key is unknown.")
        return key

    def _find(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        candidates = [
            key
            for key in self._keys or ()
            if key.algorithm_name == algorithm
            and key.public_key_use in (None, "sig")
            and (kid is None or key.key_id == kid)
        ]
        # Without a key id, only a provider with a single key is unambiguous.
        return candidates[0] if len(candidates) == 1 else None

    async def _refresh(self) -> None:
        attempted = time.monotonic()
        async with self._lock:
            if self._attempted_at >= attempted:
                return  # another request refreshed while this one waited
            self._attempted_at = time.monotonic()
            try:
                document = await asyncio.to_thread(self._download)
                keys = jwt.PyJWKSet.from_dict(document).keys
            except (OSError, ValueError, jwt.PyJWKSetError) as exc:
                logger.warning("Cannot fetch the identity provider's keys: %s", exc)
                return  # keep the keys we have, if any
            self._keys, self._fetched_at = keys, time.monotonic()
            logger.info("Fetched %d signing keys from %s", len(keys), self.jwks_url)

    def _download(self) -> Any:
        with urllib.request.urlopen(self.jwks_url, timeout=5) as response:  # noqa: S310 (AUTH_JWKS_URL is http(s))
            return json.load(response)
