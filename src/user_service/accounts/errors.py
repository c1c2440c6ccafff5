"""The accounts service's errors, each with a stable problem type (RFC 9457 §3.1.1)."""

from http import HTTPStatus

from ..errors import AppError, NotFoundError


class InvalidCredentialsError(AppError):
    status_code = HTTPStatus.UNAUTHORIZED
    type = "/problems/invalid-credentials"
    message = "The email address or password is wrong."


class UnverifiedEmailError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    type = "/problems/email-not-verified"
    message = "Verify your email address first: follow the link we sent you."


class DisabledAccountError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    type = "/problems/account-disabled"
    message = "This account is disabled."


class InvalidLinkError(AppError):
    status_code = HTTPStatus.BAD_REQUEST
    type = "/problems/invalid-link"
    message = "The link is not valid: it was used already, or it has expired."


class EmailTakenError(AppError):
    status_code = HTTPStatus.CONFLICT
    type = "/problems/email-taken"
    message = "Another account uses this email address now."


class InvalidRefreshTokenError(AppError):
    status_code = HTTPStatus.UNAUTHORIZED
    type = "/problems/invalid-refresh-token"
    message = "The refresh token is not valid; sign in again."


class RefreshTokenReusedError(AppError):
    status_code = HTTPStatus.UNAUTHORIZED
    type = "/problems/refresh-token-reused"
    message = "The refresh token was used already; the session is ended for safety."


class WrongPasswordError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    type = "/problems/wrong-password"
    message = "The current password is wrong."


class NotAPersonError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    type = "/problems/not-a-person"
    message = "Only a person signed in through /auth/login can do this."


class NoUserError(NotFoundError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"User {user_id} does not exist.")


class NoWebhookError(NotFoundError):
    def __init__(self, webhook_id: int) -> None:
        super().__init__(f"Webhook {webhook_id} does not exist.")


class NoDeliveryError(NotFoundError):
    def __init__(self, webhook_id: int, event_id: str) -> None:
        super().__init__(f"Webhook {webhook_id} has no delivery of event {event_id}.")


class NoAccountError(NotFoundError):
    def __init__(self, user_id: int) -> None:
        super().__init__(f"User {user_id} has no account.")


class NotPermittedError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    type = "/problems/not-permitted"

    def __init__(self, what: str, scopes: set[str]) -> None:
        # Nobody acts on an account, or a token, that holds more than they do.
        super().__init__(f"You may not {what} without {', '.join(sorted(scopes))}.")


class ScopeBeyondError(AppError):
    status_code = HTTPStatus.FORBIDDEN

    def __init__(self, scopes: set[str]) -> None:
        super().__init__(
            f"Your account does not have {', '.join(sorted(scopes))}: a token you make "
            "cannot have it either."
        )


class TooManyRequestsError(AppError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    type = "/problems/too-many-requests"

    def __init__(self, retry_after: int, what: str) -> None:
        super().__init__(
            f"Too many {what}; retry in {retry_after}s.", {"Retry-After": str(retry_after)}
        )


class SecondFactorRequiredError(AppError):
    """The password was right; a second factor completes the sign-in (POST /auth/mfa)."""

    status_code = HTTPStatus.UNAUTHORIZED
    type = "/problems/mfa-required"
    message = "The password is right; a second factor is needed: send one with the mfa_token."

    def __init__(self, mfa_token: str, methods: list[str]) -> None:
        super().__init__()
        self.mfa_token = mfa_token
        self.methods = methods
        self.extra = {"mfa_token": mfa_token, "methods": methods}


class InvalidMfaTokenError(AppError):
    status_code = HTTPStatus.UNAUTHORIZED
    type = "/problems/invalid-mfa-token"
    message = "The mfa_token is not valid: it was used, or it has expired. Sign in again."


class WrongCodeError(AppError):
    status_code = HTTPStatus.UNAUTHORIZED
    type = "/problems/wrong-code"
    message = "The code is wrong, or used already."


class NothingPendingError(AppError):
    status_code = HTTPStatus.CONFLICT
    type = "/problems/nothing-pending"
    message = "No authenticator is waiting to be confirmed: set one up first."


class TotpOnError(AppError):
    status_code = HTTPStatus.CONFLICT
    type = "/problems/totp-on"
    message = "An authenticator app is set up already: turn it off first."


class TotpOffError(AppError):
    status_code = HTTPStatus.CONFLICT
    type = "/problems/totp-off"
    message = "No authenticator app is set up."


class InvalidPasskeyError(AppError):
    status_code = HTTPStatus.BAD_REQUEST
    type = "/problems/invalid-passkey"
    message = "The passkey's answer is not valid for this challenge, origin or site."


class NoPasskeyError(NotFoundError):
    def __init__(self, passkey_id: object) -> None:
        super().__init__(f"You have no passkey {passkey_id}.")


class OwnAccountError(AppError):
    status_code = HTTPStatus.CONFLICT
    type = "/problems/own-account"
    message = "That is your own account: an operator does not do this to themselves."


class AddressInUseError(AppError):
    status_code = HTTPStatus.CONFLICT
    type = "/problems/address-in-use"
    message = (
        "An account already uses this email address, and the provider has not verified it "
        "for you: sign in with that account's password."
    )


class NoAddressError(AppError):
    status_code = HTTPStatus.BAD_REQUEST
    type = "/problems/no-address"
    message = "The provider gave no usable email address: it must share one (scope email)."


class LastWayInError(AppError):
    status_code = HTTPStatus.CONFLICT
    type = "/problems/last-way-in"
    message = (
        "This is your only way to sign in: set a password first (Forgot your password?), "
        "or add a passkey."
    )
