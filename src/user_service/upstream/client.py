"""This service as a relying party of a company's identity provider: its discovery document
and keys fetched when first needed (so the service starts and serves while the provider is
down), the authorization URL, and the code exchanged for a verified ID token."""

import asyncio
import base64
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..auth.oidc import InvalidTokenError, JwtVerifier, ProviderUnavailableError
from .config import ProviderSettings

METADATA_MAX_AGE = 3600.0  # seconds
TIMEOUT = 5.0


class UnreachableError(Exception):
    """The provider cannot be reached, or answers nonsense."""


class RefusedError(Exception):
    """The provider's answer is not to be trusted; the message says why."""


class Upstream:
    """One configured provider (one per worker)."""

    def __init__(
        self, settings: ProviderSettings, redirect_uri: str, leeway: float, refetch: float
    ) -> None:
        self.settings = settings
        self.redirect_uri = redirect_uri
        self._leeway, self._refetch = leeway, refetch
        self._metadata: dict[str, Any] | None = None
        self._fetched_at = -float("inf")
        self._verifier: JwtVerifier | None = None

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document, checked to be the configured issuer's."""
        if self._metadata is None or time.monotonic() - self._fetched_at > METADATA_MAX_AGE:
            url = f"{self.settings.issuer}/.well-known/openid-configuration"
            document = await _fetch(urllib.request.Request(url))  # noqa: S310 (https, or http on loopback)
            needed = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
            if not isinstance(document, dict) or not all(
                isinstance(document.get(k), str) for k in needed
            ):
                raise UnreachableError("its discovery document lacks an endpoint")
            if document["issuer"].rstrip("/") != self.settings.issuer:
                raise UnreachableError("its discovery document is another issuer's")
            self._metadata, self._fetched_at = document, time.monotonic()
            self._verifier = JwtVerifier(
                document["jwks_uri"],
                issuer=document["issuer"],
                audience=self.settings.client_id,
                leeway=self._leeway,
                refetch_interval=self._refetch,
            )
        return self._metadata

    async def authorization_url(self, *, state: str, nonce: str, challenge: str) -> str:
        metadata = await self.metadata()
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.redirect_uri,
                "scope": self.settings.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        endpoint = metadata["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def expects_iss(self) -> bool:
        """Whether the provider sends `iss` with its answers (RFC 9207), so one without it
        is refused."""
        return bool((await self.metadata()).get("authorization_response_iss_parameter_supported"))

    async def exchange(self, *, code: str, verifier: str, nonce: str) -> dict[str, Any]:
        """The claims of the ID token the code is exchanged for: signature, iss, aud, exp and
        nonce verified."""
        metadata = await self.metadata()
        credentials = ":".join(
            urllib.parse.quote(part, safe="")
            for part in (self.settings.client_id, self.settings.client_secret)
        )
        request = urllib.request.Request(  # noqa: S310 (the discovered endpoint)
            metadata["token_endpoint"],
            data=urllib.parse.urlencode(
                {
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.redirect_uri,
                    "code_verifier": verifier,
                }
            ).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        tokens = await _fetch(request)
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(id_token, str):
            raise RefusedError("the provider gave no ID token")
        assert self._verifier is not None  # noqa: S101 (metadata() made it)
        try:
            claims = await self._verifier.verify(id_token)
        except InvalidTokenError as exc:
            raise RefusedError(f"its ID token: {exc}") from None
        except ProviderUnavailableError:
            raise UnreachableError("its keys cannot be fetched") from None
        if claims.get("nonce") != nonce:
            raise RefusedError("its ID token is not this sign-in's (nonce)")
        access = tokens.get("access_token")
        endpoint = metadata.get("userinfo_endpoint")
        if "email" not in claims and isinstance(access, str) and isinstance(endpoint, str):
            # Many providers put the profile in userinfo alone (OIDC Core §5.4, and
            # oidc-provider's conformIdTokenClaims): the person's claims come from there,
            # for the ID token's subject only.
            request = urllib.request.Request(  # noqa: S310 (the discovered endpoint)
                endpoint,
                headers={"Authorization": f"Bearer {access}", "Accept": "application/json"},
            )
            info = await _fetch(request)
            if not isinstance(info, dict) or info.get("sub") != claims["sub"]:
                raise RefusedError("its userinfo is another person's")
            wanted = ("email", "email_verified", "name")
            claims = {**{k: info[k] for k in wanted if k in info}, **claims}
        return claims


async def _fetch(request: urllib.request.Request) -> Any:
    def fetch() -> Any:
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as exc:
            if 400 <= exc.code < 500:  # the provider refused: a used or forged code, say
                raise RefusedError(f"the provider answered {exc.code}") from None
            raise UnreachableError(f"the provider answered {exc.code}") from None
        except (OSError, ValueError) as exc:
            raise UnreachableError(str(exc)) from None

    return await asyncio.to_thread(fetch)
