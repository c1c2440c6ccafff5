import re
from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict

from ..schemas import InputModel
from ..users.schemas import Name
from .passwords import MAX_LENGTH

# Deliberately loose (RFC 5321 allows much): something@something.tld, at most 254
# characters, without spaces or control characters. Whether it works is what verification
# shows. The characters are spelt out, not \s, which regex engines read differently.
_NOT = r"@ \x00-\x1f\x7f-\x9f\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_EMAIL_PATTERN = rf"^[^{_NOT}]+@[^{_NOT}]+\.[^{_NOT}]+$"
_EMAIL = re.compile(_EMAIL_PATTERN)


def _check_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("must be an email address such as alice@example.com")
    return value


Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_check_email),
    # The same rule, told to clients (our check gives the clearer message).
    Field(examples=["alice@example.com"], json_schema_extra={"pattern": _EMAIL_PATTERN}),
]
# Any characters (spaces, emoji…), never truncated; the length floor is a setting, checked
# with the other rules. (Lone surrogates, which are not text, pydantic refuses already.)
Password = Annotated[str, StringConstraints(max_length=MAX_LENGTH)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Register(InputModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "alice@example.com", "password": "correct horse battery", "name": "Alice"}
            ]
        }
    )

    email: Email
    password: Password
    name: Name


class TokenIn(InputModel):
    token: Token


class EmailIn(InputModel):
    email: Email


class ResetPassword(InputModel):
    token: Token
    password: Password


class RefreshIn(InputModel):
    refresh_token: Token


class Rename(InputModel):
    name: Name


class ChangePassword(InputModel):
    current_password: Password
    new_password: Password


class ChangeEmail(InputModel):
    current_password: Password
    email: Email


class ConfirmPassword(InputModel):
    current_password: Password


class Accepted(TypedDict):
    detail: str


class TokenPair(TypedDict):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


class Session(TypedDict):
    id: UUID
    created_at: datetime
    last_used_at: datetime
    client_address: str | None
    user_agent: str | None
    current: bool


class Me(TypedDict):
    id: int
    nickname: str
    email: str
    email_verified: bool
    created_at: datetime
