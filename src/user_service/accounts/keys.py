"""Access tokens: short-lived JWTs signed with Ed25519 keys that live in the database (the
private half encrypted), shared by every worker; their public halves are the JWKS. ID
tokens (the OpenID Provider's) are signed RS256 by default, which every relying party
knows (OIDC Core §15.1), or EdDSA for a client that asks: one key of each, rotated
together."""

import json
import secrets
import time
import uuid
from typing import Any

import jwt
from cryptography.fernet import InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from ..crypto import Cipher
from ..database import Connection, Database

ALGORITHM = "EdDSA"  # access tokens'
ID_TOKEN_ALGORITHMS = ("RS256", "EdDSA")  # the first by default
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


PrivateKey = Ed25519PrivateKey | rsa.RSAPrivateKey


async def rotate(
    connection: Connection, cipher: Cipher, algorithms: tuple[str, ...] = ID_TOKEN_ALGORITHMS
) -> list[str]:
    """Add a new signing key for each algorithm, used from now on; the older ones still
    verify. Their key ids."""
    kids = []
    for algorithm in algorithms:
        key: PrivateKey
        if algorithm == "RS256":
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        else:
            key = Ed25519PrivateKey.generate()
            public = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
        kid = secrets.token_urlsafe(12)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        public.update(kid=kid, alg=algorithm, use="sig")
        await connection.execute(
            "INSERT INTO signing_keys (kid, private_key, public_jwk) VALUES ($1, $2, $3)",
            kid,
            cipher.encrypt(private),
            json.dumps(public),
        )
        kids.append(kid)
    return kids


class Signer:
    """Signs and verifies this service's access tokens (one per worker)."""

    def __init__(self, db: Database, cipher: Cipher, issuer: str, ttl_seconds: int) -> None:
        self.db = db
        self.cipher = cipher
        self.issuer = issuer
        self.ttl = ttl_seconds
        self._private: dict[str, PrivateKey] = {}
        self._public: dict[str, Any] = {}  # kid -> PyJWK
        self._jwks: list[dict[str, Any]] = []
        self._newest: dict[str, str] = {}  # algorithm -> kid
        self._loaded_at = -float("inf")

    async def _keys(self) -> list[Any]:
        return await self.db.fetch(
            "SELECT kid, private_key, public_jwk FROM signing_keys ORDER BY created_at, kid"
        )

    async def _load(self) -> None:
        rows = await self._keys()
        present = {json.loads(row["public_jwk"])["alg"] for row in rows}
        missing = tuple(alg for alg in ID_TOKEN_ALGORITHMS if alg not in present)
        if missing:  # a new database, or one from before ID tokens
            async with self.db.transaction() as connection:
                await rotate(connection, self.cipher, missing)
            rows = await self._keys()
        jwks = [json.loads(row["public_jwk"]) for row in rows]
        self._public = {jwk["kid"]: jwt.PyJWK(jwk, jwk["alg"]) for jwk in jwks}
        self._jwks = jwks
        for row, jwk in zip(rows, jwks, strict=True):
            self._newest[jwk["alg"]] = row["kid"]
        for kid in self._newest.values():
            if kid not in self._private:
                row = next(row for row in rows if row["kid"] == kid)
                try:
                    pem = self.cipher.decrypt(row["private_key"])
                except InvalidToken:
                    raise KeyUnusableError(kid) from None
                key = serialization.load_pem_private_key(pem, None)
                assert isinstance(key, PrivateKey)  # noqa: S101 (we only store these)
                self._private[kid] = key
        self._loaded_at = time.monotonic()

    async def _fresh(self, *, kid: str | None = None) -> None:
        age = time.monotonic() - self._loaded_at
        if age > RELOAD_SECONDS or (kid is not None and kid not in self._public and age > 1):
            await self._load()

    async def issue(
        self,
        *,
        user_id: int | None,
        session_id: uuid.UUID | None,
        scopes: list[str],
        amr: list[str] | None = None,
        client_id: str | None = None,
    ) -> str:
        """An access token: a person's, in one of their sessions (through an application,
        `client_id`, for the OpenID Provider's), or an application's own (no user)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": str(user_id) if user_id is not None else client_id,
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + self.ttl,
            "jti": secrets.token_urlsafe(12),
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        if amr is not None:
            claims["amr"] = amr  # how the session was signed in to (RFC 8176)
        if client_id is not None:
            claims["client_id"] = client_id  # RFC 9068
        return await self.sign(claims, ALGORITHM)

    async def sign(self, claims: dict[str, Any], algorithm: str) -> str:
        """`claims` as a JWT signed with our newest key for `algorithm`."""
        await self._fresh()
        kid = self._newest[algorithm]
        return jwt.encode(claims, self._private[kid], algorithm, headers={"kid": kid})

    def ours(self, token: str) -> bool:
        """Whether `token` claims to come from us (not yet verified)."""
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return False
        return isinstance(claims, dict) and claims.get("iss") == self.issuer

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of one of our unexpired access tokens."""
        return await self.verified(
            token,
            ALGORITHM,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
        )

    async def verified(
        self, token: str, algorithm: str | tuple[str, ...], **checks: Any
    ) -> dict[str, Any]:
        """The claims of a JWT we signed with one of `algorithm`, decoded with `checks`
        (PyJWT's); InvalidAccessTokenError if it is not one, saying why."""
        algorithms = (algorithm,) if isinstance(algorithm, str) else algorithm
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise InvalidAccessTokenError("The token is not valid.") from None
        if header.get("alg") not in algorithms:
            raise InvalidAccessTokenError("The token is not valid.")
        kid = header.get("kid")
        await self._fresh(kid=kid if isinstance(kid, str) else None)
        key = self._public.get(kid) if isinstance(kid, str) else None
        if key is None or key.algorithm_name != header["alg"]:
            raise InvalidAccessTokenError("The token is signed with an unknown key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[header["alg"]], issuer=self.issuer, **checks
            )
        except jwt.ExpiredSignatureError:
            raise InvalidAccessTokenError("The token has expired.") from None
        except jwt.InvalidTokenError:
            raise InvalidAccessTokenError("The token is not valid.") from None
        return claims

    async def jwks(self) -> dict[str, Any]:
        await self._fresh()
        return {"keys": self._jwks}
