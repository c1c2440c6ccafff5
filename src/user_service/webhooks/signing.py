"""Standard Webhooks' signatures: `v1,` and the base64 of an HMAC-SHA256, keyed with the
secret's bytes, over `id.timestamp.body`."""

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

PREFIX = "whsec_"
# After a rotation the previous secret signs too, this long: receivers switch meanwhile.
ROTATION_OVERLAP = timedelta(hours=24)


def new_secret() -> str:
    """A secret as the spec writes it: whsec_ and the base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secrets_: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three headers of one attempt; signed by each of `secrets_` (after a rotation, the
    new secret and the previous one), space-separated as the spec allows."""
    signatures = " ".join(signature(s, message_id, timestamp, body) for s in secrets_)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
