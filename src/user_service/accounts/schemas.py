from datetime import datetime
from typing import Annotated, Any
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
    amr: list[str]  # how it was signed in to (RFC 8176): pwd, otp, hwk, swk, mfa


class Me(TypedDict):
    id: int
    nickname: str
    email: str
    email_verified: bool
    created_at: datetime


# Second factors

Code = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]  # an authenticator app's
# As shown (abcde-fghij), or typed otherwise: capitals, spaces, no dash.
RecoveryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 -]{10,20}$")]
# A passkey's answer: WebAuthn's JSON of a PublicKeyCredential (the body's size bounds it).
Credential = dict[str, Any]


class _Step(InputModel):
    mfa_token: Token


class CodeStep(_Step):
    code: Code


class RecoveryCodeStep(_Step):
    recovery_code: RecoveryCode


class PasskeyStep(_Step):
    credential: Credential


# The second step of a sign-in: the mfa_token and one second factor.
SecondStep = CodeStep | RecoveryCodeStep | PasskeyStep


class PasswordAndCode(InputModel):
    password: Password
    code: Code


class PasswordAndRecoveryCode(InputModel):
    password: Password
    recovery_code: RecoveryCode


# The password, and a code or a recovery code.
PasswordAndFactor = PasswordAndCode | PasswordAndRecoveryCode


class PasswordIn(InputModel):
    password: Password


class CodeIn(InputModel):
    code: Code


class MfaTokenIn(InputModel):
    mfa_token: Token


class NewPasskey(InputModel):
    challenge_token: Token
    name: Name
    credential: Credential


class PasskeySignIn(InputModel):
    challenge_token: Token
    credential: Credential


class TotpSecret(TypedDict):
    secret: str
    otpauth_uri: str


class RecoveryCodes(TypedDict):
    recovery_codes: list[str]


class Passkey(TypedDict):
    id: UUID
    name: str
    created_at: datetime
    last_used_at: datetime | None


class SecondFactorStatus(TypedDict):
    totp: bool
    recovery_codes_left: int
    passkeys: list[Passkey]


class WebAuthnOptions(TypedDict):
    challenge_token: str
    options: dict[str, Any]  # navigator.credentials' publicKey, as WebAuthn's JSON
