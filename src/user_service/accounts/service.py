"""The account flows: each opens one transaction, calls the repository, and queues its
emails in that same transaction (sent afterwards by the outbox)."""

import functools
import html
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ParamSpec
from urllib.parse import urlencode
from uuid import UUID

import asyncpg
from fastapi.exceptions import RequestValidationError

from .. import mail
from ..audit.repository import Context, record
from ..config import Settings
from ..crypto import Cipher
from ..database import Connection, Database
from ..errors import AppError
from . import passwords, repository, throttle
from .keys import Signer

logger = logging.getLogger(__name__)


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


class NoAccountError(AppError):
    status_code = HTTPStatus.NOT_FOUND

    def __init__(self, user_id: int) -> None:
        super().__init__(f"User {user_id} has no account.")


class TooManyRequestsError(AppError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    type = "/problems/too-many-requests"

    def __init__(self, retry_after: int, what: str) -> None:
        super().__init__(
            f"Too many {what}; retry in {retry_after}s.", {"Retry-After": str(retry_after)}
        )


P = ParamSpec("P")

# The password hash of an invited person until they choose one: not an argon2 hash, so that
# no password matches it (Hasher.verify answers False).
INVITED = "!invited"


def _after_response(
    flow: Callable[P, Coroutine[Any, Any, None]],
) -> Callable[P, Coroutine[Any, Any, None]]:
    """For a flow that runs once its answer is sent, so that the answer takes as long whether
    or not the address has an account: nobody is left to see its errors but the log."""

    @functools.wraps(flow)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            await flow(*args, **kwargs)
        except Exception:
            logger.exception("The %s flow failed after its answer was sent", flow.__name__)

    return run


@dataclass
class Accounts:
    """What the flows need, one per worker."""

    db: Database
    settings: Settings
    cipher: Cipher
    hasher: passwords.Hasher
    signer: Signer
    outbox: mail.Sender

    # Throttles

    async def limit_address(self, action: str, address: str) -> None:
        limit = self.settings.auth_address_limit_per_minute
        retry_after = await throttle.hit(self.db, f"{action}:{address}", limit)
        if retry_after is not None:
            raise TooManyRequestsError(retry_after, "requests from this address")

    async def _may_mail(self, connection: Connection, kind: str, email: str) -> bool:
        # At most one email of each kind per address per minute: nobody can be mail-bombed.
        return await throttle.hit(connection, f"mail:{kind}:{email.casefold()}", 1) is None

    def check_password(self, password: str, *, email: str, name: str) -> None:
        why = passwords.problem(
            password, email=email, name=name, min_length=self.settings.password_min_length
        )
        if why is not None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("body", "password"),
                        "msg": f"The password {why}.",
                        "type": "value_error",
                    }
                ]
            )

    # Emails

    def _link(self, page: str, token: str) -> str:
        return f"{self.settings.link_base}/account/{page}?{urlencode({'token': token})}"

    async def _send(
        self,
        connection: Connection,
        to: str,
        subject: str,
        lines: list[str],
        link: str | None = None,
    ) -> None:
        text = "\n\n".join([*lines, *([link] if link else [])]) + "\n"
        body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
        if link:
            href = html.escape(link, quote=True)
            body += f'<p><a href="{href}">{href}</a></p>'
        email = mail.Email(
            to=to, subject=subject, text=text, html=f"<html><body>{body}</body></html>"
        )
        await mail.enqueue(connection, self.cipher, email, self.settings.mail_from)

    async def _send_verification(self, connection: Connection, user_id: int, email: str) -> None:
        await repository.drop_links(connection, user_id, "verify")
        token = await repository.issue_link(
            connection,
            user_id=user_id,
            purpose="verify",
            email=email,
            ttl=self.settings.auth_verify_ttl,
        )
        hours = int(self.settings.auth_verify_ttl.total_seconds() // 3600)
        await self._send(
            connection,
            email,
            "Verify your email address",
            [f"Follow this link within {hours} hours to verify {email}:"],
            self._link("verify", token),
        )

    # Flows

    async def new_password(self, password: str, *, email: str, name: str) -> str:
        """The hash of a new password that passes the rules (else a 422 saying why)."""
        self.check_password(password, email=email, name=name)
        return await self.hasher.hash(password)

    @_after_response
    async def register(
        self, context: Context, *, email: str, password_hash: str, name: str
    ) -> None:
        async with self.db.transaction() as connection:
            user_id = await repository.create(
                connection, email=email, password_hash=password_hash, name=name
            )
            if user_id is not None:
                await record(connection, context, "account.registered", user_id)
                await self._send_verification(connection, user_id, email)
            elif await self._may_mail(connection, "taken", email):
                await self._send(
                    connection,
                    email,
                    "Someone tried to sign up with your email address",
                    [
                        "Someone, perhaps you, tried to create an account with this address, "
                        "which already has one. If it was you, sign in, or reset your password."
                    ],
                    f"{self.settings.link_base}/account/forgot-password",
                )
        self.outbox.wake()

    async def verify(self, context: Context, token: str) -> None:
        async with self.db.transaction() as connection:
            link = await repository.use_link(connection, token, "verify")
            if link is None:
                raise InvalidLinkError
            if not await repository.verify_email(connection, link["user_id"], link["email"]):
                raise EmailTakenError
            await record(
                connection, context, "email.verified", link["user_id"], email=link["email"]
            )

    @_after_response
    async def resend(self, email: str) -> None:
        account = await repository.by_email(self.db, email)
        if account is None or account["email_verified_at"] is not None:
            return
        async with self.db.transaction() as connection:
            if await self._may_mail(connection, "verify", email):
                await self._send_verification(connection, account["user_id"], account["email"])
        self.outbox.wake()

    async def sign_in(
        self, context: Context, *, email: str, password: str, user_agent: str | None
    ) -> tuple[asyncpg.Record, UUID]:
        """Check the password and open a session: the account and the session's id."""
        failures = f"signin:{email.casefold()}"  # by address given, known or not: no enumeration
        retry_after = await throttle.blocked_for(self.db, failures)
        if retry_after is not None:
            raise TooManyRequestsError(retry_after, "failed sign-ins for this account")
        account = await repository.by_email(self.db, email)
        # Hashing first: an unknown address takes as long as a wrong password.
        password_hash = account["password_hash"] if account else None
        if not await self.hasher.verify(password_hash, password) or account is None:
            await throttle.fail(self.db, failures)
            await record(self.db, context, "signin.failed", account["user_id"] if account else None)
            raise InvalidCredentialsError
        if account["disabled_at"] is not None:
            raise DisabledAccountError
        if account["email_verified_at"] is None:
            raise UnverifiedEmailError
        rehashed = None
        if self.hasher.outdated(account["password_hash"]):
            rehashed = await self.hasher.hash(password)
        async with self.db.transaction() as connection:
            await throttle.clear(connection, failures)
            await repository.signed_in(connection, account["user_id"], rehashed)
            session_id = await repository.open_session(
                connection,
                user_id=account["user_id"],
                ttl=self.settings.auth_refresh_ttl,
                client_address=context.client_address,
                user_agent=user_agent,
            )
            await record(
                connection, context, "signin.succeeded", account["user_id"], session=str(session_id)
            )
        return account, session_id

    async def first_pair(self, account: asyncpg.Record, session_id: UUID) -> dict[str, object]:
        """The token pair of a session just opened."""
        async with self.db.transaction() as connection:
            refresh = await repository.issue_refresh(connection, session_id)
        return await self._pair(account["user_id"], session_id, account["scopes"], refresh)

    async def _pair(
        self, user_id: int, session_id: UUID, scopes: list[str], refresh: str
    ) -> dict[str, object]:
        access = await self.signer.issue(user_id=user_id, session_id=session_id, scopes=scopes)
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(self.settings.auth_access_ttl.total_seconds()),
            "refresh_token": refresh,
        }

    async def refresh(self, context: Context, token: str) -> dict[str, object]:
        async with self.db.transaction() as connection:
            used = await repository.use_refresh(
                connection, token, self.settings.auth_refresh_idle_ttl
            )
            if used is not None:
                await repository.touch_session(connection, used["session_id"])
                refresh = await repository.issue_refresh(connection, used["session_id"])
        if used is None:
            await self._refuse_replay(context, token)
            raise InvalidRefreshTokenError
        return await self._pair(used["user_id"], used["session_id"], used["scopes"], refresh)

    async def _refuse_replay(self, context: Context, token: str) -> None:
        # A used refresh token comes back: it was stolen, or its holder's copy was. Either
        # way the whole session ends, for every copy of it.
        async with self.db.transaction() as connection:
            session = await repository.replayed_session(connection, token)
            if session is None:
                return
            if await repository.revoke_session(connection, session["id"]):
                await record(
                    connection,
                    context,
                    "session.revoked",
                    session["user_id"],
                    session=str(session["id"]),
                    reason="refresh token reused",
                )
        raise RefreshTokenReusedError

    async def end_session(self, context: Context, user_id: int, session_id: UUID) -> bool:
        async with self.db.transaction() as connection:
            ended = await repository.revoke_session(connection, session_id, user_id)
            if ended:
                await record(
                    connection, context, "session.revoked", user_id, session=str(session_id)
                )
        return ended

    @_after_response
    async def forgot(self, email: str) -> None:
        account = await repository.by_email(self.db, email)
        if account is None:
            return
        async with self.db.transaction() as connection:
            if not await self._may_mail(connection, "reset", email):
                return
            await self._send_reset(connection, account["user_id"], account["email"])
        self.outbox.wake()

    async def _send_reset(self, connection: Connection, user_id: int, email: str) -> None:
        await repository.drop_links(connection, user_id, "reset")
        token = await repository.issue_link(
            connection,
            user_id=user_id,
            purpose="reset",
            email=email,
            ttl=self.settings.auth_reset_ttl,
        )
        minutes = int(self.settings.auth_reset_ttl.total_seconds() // 60)
        await self._send(
            connection,
            email,
            "Reset your password",
            [
                f"Follow this link within {minutes} minutes to choose a new password. "
                "If you did not ask for this, ignore this email: your password stays as it is."
            ],
            self._link("reset-password", token),
        )

    async def reset(self, context: Context, token: str, password: str) -> None:
        link = await repository.peek_link(self.db, token, "reset")
        if link is None:
            raise InvalidLinkError
        account = await repository.by_id(self.db, link["user_id"])
        if account is None:
            raise InvalidLinkError
        self.check_password(password, email=account["email"], name=account["nickname"])
        password_hash = await self.hasher.hash(password)
        async with self.db.transaction() as connection:
            used = await repository.use_link(connection, token, "reset")
            if used is None:
                raise InvalidLinkError
            await repository.set_password(connection, account["user_id"], password_hash)
            await repository.prove_email(connection, account["user_id"], used["email"])
            await repository.revoke_sessions(connection, account["user_id"])
            await throttle.clear(connection, f"signin:{account['email'].casefold()}")
            await record(connection, context, "password.reset", account["user_id"])
            await self._notify_password_changed(connection, account["email"])
        self.outbox.wake()

    async def _notify_password_changed(self, connection: Connection, email: str) -> None:
        await self._send(
            connection,
            email,
            "Your password was changed",
            [
                "The password of your account was just changed, and every session signed out. "
                "If this was not you, reset your password now."
            ],
            f"{self.settings.link_base}/account/forgot-password",
        )

    async def _confirm(self, context: Context, user_id: int, password: str) -> asyncpg.Record:
        account = await repository.by_id(self.db, user_id)
        if account is None:
            raise InvalidCredentialsError
        failures = f"signin:{account['email'].casefold()}"
        retry_after = await throttle.blocked_for(self.db, failures)
        if retry_after is not None:
            raise TooManyRequestsError(retry_after, "wrong passwords for this account")
        if not await self.hasher.verify(account["password_hash"], password):
            await throttle.fail(self.db, failures)
            await record(self.db, context, "password.confirm_failed", user_id)
            raise WrongPasswordError
        return account

    async def change_password(
        self, context: Context, user_id: int, session_id: UUID, current: str, new: str
    ) -> None:
        account = await self._confirm(context, user_id, current)
        self.check_password(new, email=account["email"], name=account["nickname"])
        password_hash = await self.hasher.hash(new)
        async with self.db.transaction() as connection:
            await repository.set_password(connection, user_id, password_hash)
            await repository.revoke_sessions(connection, user_id, keep=session_id)
            await record(connection, context, "password.changed", user_id)
            await self._notify_password_changed(connection, account["email"])
        self.outbox.wake()

    async def change_email(self, context: Context, user_id: int, password: str, email: str) -> None:
        account = await self._confirm(context, user_id, password)
        async with self.db.transaction() as connection:
            await self._send_verification(connection, user_id, email)
            await self._send(
                connection,
                account["email"],
                "Your email address is being changed",
                [
                    f"Someone signed in to your account asked to change its email address to "
                    f"{email}. It changes once that address is verified. If this was not you, "
                    "change your password now."
                ],
            )
            await record(connection, context, "email.change_requested", user_id, email=email)
        self.outbox.wake()

    async def delete(self, context: Context, user_id: int, password: str) -> None:
        account = await self._confirm(context, user_id, password)
        async with self.db.transaction() as connection:
            await repository.delete(connection, user_id)
            await record(connection, context, "account.deleted", user_id, email=account["email"])

    # Operators' changes (the console): each records its event with the operator as actor.

    async def _account(self, user_id: int) -> asyncpg.Record:
        account = await repository.by_id(self.db, user_id)
        if account is None:
            raise NoAccountError(user_id)
        return account

    async def invite(self, context: Context, *, name: str, email: str) -> int:
        """A new user with an account that has no password yet: the person gets a link to
        choose one (using it verifies the address). The new user's id."""
        async with self.db.transaction() as connection:
            user_id = await repository.create(
                connection, email=email, password_hash=INVITED, name=name
            )
            if user_id is None:
                raise EmailTakenError
            token = await repository.issue_link(
                connection,
                user_id=user_id,
                purpose="reset",
                email=email,
                ttl=self.settings.auth_verify_ttl,
            )
            hours = int(self.settings.auth_verify_ttl.total_seconds() // 3600)
            await self._send(
                connection,
                email,
                "You are invited to user-service",
                [
                    f"An operator created an account for you ({name}) with this address. "
                    f"Follow this link within {hours} hours to choose your password; then "
                    "sign in with this address and that password."
                ],
                self._link("reset-password", token),
            )
            await record(connection, context, "user.invited", user_id, email=email)
        self.outbox.wake()
        return user_id

    async def set_disabled(self, context: Context, user_id: int, disabled: bool) -> None:
        """Disable the account, ending every session (sign-in is refused), or enable it."""
        await self._account(user_id)
        async with self.db.transaction() as connection:
            if await repository.set_disabled(connection, user_id, disabled):
                if disabled:
                    await repository.revoke_sessions(connection, user_id)
                kind = "user.disabled" if disabled else "user.enabled"
                await record(connection, context, kind, user_id)

    async def end_sessions(self, context: Context, user_id: int) -> None:
        """End every session of the user: each device must sign in again."""
        async with self.db.transaction() as connection:
            await repository.revoke_sessions(connection, user_id)
            await record(connection, context, "user.sessions_revoked", user_id)

    async def replace_email(self, context: Context, user_id: int, email: str) -> None:
        """Give the account a new address, unverified: a link to verify it goes there, a
        notice to the old one; sign-in waits for the verification."""
        account = await self._account(user_id)
        async with self.db.transaction() as connection:
            if not await repository.replace_email(connection, user_id, email):
                raise EmailTakenError
            # A reset link sent to the old address must not open the account any more.
            await repository.drop_links(connection, user_id, "reset")
            await self._send_verification(connection, user_id, email)
            await self._send(
                connection,
                account["email"],
                "Your email address was changed",
                [
                    f"An operator changed the email address of your account to {email}. "
                    "If you did not ask for this, contact them."
                ],
            )
            await record(
                connection,
                context,
                "user.email_changed_by_admin",
                user_id,
                old=account["email"],
                new=email,
            )
        self.outbox.wake()

    async def send_reset(self, context: Context, user_id: int) -> None:
        """Email the person a link to choose a new password (as they could ask themselves)."""
        account = await self._account(user_id)
        async with self.db.transaction() as connection:
            await self._send_reset(connection, user_id, account["email"])
            await record(connection, context, "user.reset_sent", user_id, email=account["email"])
        self.outbox.wake()
