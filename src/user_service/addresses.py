"""Email addresses: which strings may be one (email-validator's rules, which pydantic's
EmailStr uses too), and the one form that tells addresses apart. Every lookup, the unique
index and every throttle key use that form, so two spellings that reach one account always
share one counter."""

import contextlib
import unicodedata
from typing import Annotated

import idna
from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, StringConstraints

MAX_LENGTH = 254  # RFC 5321's limit on a path, less its angle brackets


def key(address: str) -> str:
    """The address as every comparison sees it: trimmed, NFC, lower-cased (Python's
    lower(), here and nowhere else), its domain in IDNA's ASCII form."""
    local, at, domain = unicodedata.normalize("NFC", address.strip()).rpartition("@")
    # Not a domain name (an address stored before the rules): compared as it is.
    with contextlib.suppress(idna.IDNAError):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return f"{local.lower()}{at}{domain.lower()}"


def _valid(value: str) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    try:
        # Refuses what looks like another address on screen (zero-width and direction
        # marks), quoted local parts, and anything a mail header would choke on.
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"must be an email address such as alice@example.com: {exc}") from None
    return value  # as given: it is shown and written to as the person spelt it


# An address a person gives us: valid, trimmed, at most 254 characters.
Email = Annotated[
    str,
    StringConstraints(max_length=MAX_LENGTH),
    AfterValidator(_valid),
    Field(examples=["alice@example.com"], json_schema_extra={"format": "email"}),
]
# An address to look up (signing in): any text of an address's length; a wrong one is
# simply not found.
Login = Annotated[str, StringConstraints(max_length=MAX_LENGTH)]
