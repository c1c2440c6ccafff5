from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import ConfigDict, StringConstraints
from typing_extensions import TypedDict

from ..addresses import Email, Login
from ..schemas import InputModel
from ..users.schemas import Name
from .passwords import MAX_LENGTH

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


class SignInForm(InputModel):
    """The sign-in page's form."""

    email: Login
    password: Password


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
