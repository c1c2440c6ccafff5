"""Access tokens: short-lived JWTs signed with Ed25519 keys that live in the database (the
private half encrypted), shared by every worker; their public halves are the JWKS."""

import json
import secrets
import time
import uuid
from typing import Any

import jwt
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from ..crypto import Cipher
from ..database import Connection, Database

ALGORITHM = "EdDSA"
AUDIENCE = "user-service"
RELOAD_SECONDS = 60.0  # a key added by `keys rotate` is used for signing within this


class KeyUnusableError(RuntimeError):
    def __init__(self, kid: str) -> None:
        super().__init__(
            f"signing key {kid} was encrypted under another AUTH_SECRET_KEY: restore that "
            "value, or run `user-service keys rotate` to add a key under this one (tokens "
            "signed with the old keys then stop working)"
        )


class InvalidAccessTokenError(Exception):
    """Not one of our valid access tokens; the message says why."""


async def rotate(connection: Connection, cipher: Cipher) -> str:
    """Add a new signing key, used from now on; the older ones still verify. Its key id."""
    key = Ed25519PrivateKey.generate()
    kid = secrets.token_urlsafe(12)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    public.update(kid=kid, alg=ALGORITHM, use="sig")
    await connection.execute(
        "INSERT INTO signing_keys (kid, private_key, public_jwk) VALUES ($1, $2, $3)",
        kid,
        cipher.encrypt(private),
        json.dumps(public),
    )
    return kid


class Signer:
    """Signs and verifies this service's access tokens (one per worker)."""

    def __init__(self, db: Database, cipher: Cipher, issuer: str, ttl_seconds: int) -> None:
        self.db = db
        self.cipher = cipher
        self.issuer = issuer
        self.ttl = ttl_seconds
        self._private: dict[str, Ed25519PrivateKey] = {}
        self._public: dict[str, Any] = {}  # kid -> PyJWK
        self._jwks: list[dict[str, Any]] = []
        self._newest = ""
        self._loaded_at = -float("inf")

    async def _load(self) -> None:
        rows = await self.db.fetch(
            "SELECT kid, private_key, public_jwk FROM signing_keys ORDER BY created_at, kid"
        )
        if not rows:
            async with self.db.pool.acquire() as connection:
                await rotate(connection, self.cipher)
            rows = await self.db.fetch(
                "SELECT kid, private_key, public_jwk FROM signing_keys ORDER BY created_at, kid"
            )
        jwks = [json.loads(row["public_jwk"]) for row in rows]
        self._public = {jwk["kid"]: jwt.PyJWK(jwk, ALGORITHM) for jwk in jwks}
        self._jwks = jwks
        newest = rows[-1]
        if newest["kid"] not in self._private:
            try:
                pem = self.cipher.decrypt(newest["private_key"])
            except InvalidToken:
                raise KeyUnusableError(newest["kid"]) from None
            key = serialization.load_pem_private_key(pem, None)
            assert isinstance(key, Ed25519PrivateKey)  # noqa: S101 (we only store these)
            self._private[newest["kid"]] = key
        self._newest = newest["kid"]
        self._loaded_at = time.monotonic()

    async def _fresh(self, *, kid: str | None = None) -> None:
        age = time.monotonic() - self._loaded_at
        if age > RELOAD_SECONDS or (kid is not None and kid not in self._public and age > 1):
            await self._load()

    async def issue(
        self, *, user_id: int, session_id: uuid.UUID, scopes: list[str], amr: list[str]
    ) -> str:
        await self._fresh()
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(user_id),
            "sid": str(session_id),
            "scope": " ".join(scopes),
            "amr": amr,  # how the session was signed in to (RFC 8176)
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(12),
        }
        return jwt.encode(
            claims, self._private[self._newest], ALGORITHM, headers={"kid": self._newest}
        )

    def ours(self, token: str) -> bool:
        """Whether `token` claims to come from us (not yet verified)."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return False
        return isinstance(claims, dict) and claims.get("iss") == self.issuer

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of one of our unexpired access tokens."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidAccessTokenError("The token is not valid.") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidAccessTokenError("The token is not valid.")
        kid = header.get("kid")
        await self._fresh(kid=kid if isinstance(kid, str) else None)
        key = self._public.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidAccessTokenError("The token is signed with an unknown key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self.issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidAccessTokenError("The token has expired.") from None
        except jwt.InvalidTokenError:
            raise InvalidAccessTokenError("The token is not valid.") from None
        return claims

    async def jwks(self) -> dict[str, Any]:
        await self._fresh()
        return {"keys": self._jwks}
