"""Encryption at rest for what must be readable again (signing keys, queued emails), keyed
by AUTH_SECRET_KEY; and the hashes of one-time secrets, which need not be."""

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

from .config import Settings

SECRET_KEY_FILE = "secret.key"  # noqa: S105 (a file name)


class MissingSecretKeyError(RuntimeError):
    """AUTH_SECRET_KEY is needed and not set."""


def secret_key(settings: Settings) -> str:
    """AUTH_SECRET_KEY; on the embedded database, one generated once into .data/ (mode 0600)
    when it is not set."""
    if settings.auth_secret_key is not None:
        return settings.auth_secret_key.get_secret_value()
    if not settings.embedded:
        raise MissingSecretKeyError(
            "AUTH_SECRET_KEY is not set: give every instance the same random value, e.g. "
            "from: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    path = Path(settings.db_embedded_dir).parent / SECRET_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


class Cipher:
    """Authenticated encryption (Fernet: AES-128-CBC with HMAC-SHA256) under the secret key,
    and signatures (HMAC-SHA256) under another key derived from it."""

    def __init__(self, key: str) -> None:
        derived = hashlib.sha256(b"user-service encryption at rest\0" + key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))
        self._mac_key = hashlib.sha256(b"user-service signatures\0" + key.encode()).digest()

    def sign(self, purpose: str, value: str) -> str:
        """`value` with a signature that only this key makes, for this purpose only."""
        return f"{value}.{self.mac(purpose, value)}"

    def unsign(self, purpose: str, signed: str) -> str | None:
        """The value `sign` signed for this purpose, or None if the signature is not ours."""
        value, _, signature = signed.rpartition(".")
        return value if hmac.compare_digest(signature, self.mac(purpose, value)) else None

    def mac(self, purpose: str, value: str) -> str:
        """The signature of `value` for this purpose (HMAC-SHA256, URL-safe base64)."""
        message = f"{purpose}\0{value}".encode()
        return base64.urlsafe_b64encode(hmac.digest(self._mac_key, message, "sha256")).decode()

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, data: bytes) -> bytes:
        """The plaintext; cryptography.fernet.InvalidToken if `data` was altered or encrypted
        under another key."""
        return self._fernet.decrypt(data)


def new_token(prefix: str = "") -> str:
    """A one-time secret of 256 random bits, URL-safe."""
    return prefix + secrets.token_urlsafe(32)


def digest(token: str) -> bytes:
    """How a random secret is stored and looked up: its SHA-256 (nothing to stretch)."""
    return hashlib.sha256(token.encode()).digest()
