"""Signing in and what a sign-in opens: the pipeline every way in goes through (the address
throttle, the account's failure count, the password, the account's state, a session, the
audit), refresh tokens, sessions, and the check of an access token."""

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import asyncpg

from ..audit.repository import record
from ..auth.guard import Principal, UnauthenticatedError
from ..context import Context
from ..database import Connection
from . import repository, throttle
from .errors import (
    DisabledAccountError,
    InvalidCredentialsError,
    InvalidRefreshTokenError,
    RefreshTokenReusedError,
    SecondFactorRequiredError,
    UnverifiedEmailError,
)
from .keys import InvalidAccessTokenError
from .steps import Steps, signin_key

# How long a sign-in may wait for its second factor, or a passkey's answer.
CHALLENGE_TTL = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Opened:
    """A session a sign-in opened."""

    user_id: int
    session_id: UUID
    scopes: list[str]
    amr: list[str]


class SignIn(Steps):
    async def sign_in(
        self, context: Context, *, email: str, password: str, replacing: UUID | None = None
    ) -> Opened:
        """Check the password and open a session (a page keeps it in a cookie), ending the
        one it replaces (a browser's earlier session), if any. An account with a second
        factor gets a challenge for it instead (SecondFactorRequiredError, 401): only a
        right password learns that it has one."""
        await self.limit_address("login", context)
        await self.failures_allowed(email, "failed sign-ins for this account")
        account = await repository.by_email(self.db, email)
        # Hashing first: an unknown address takes as long as a wrong password.
        password_hash = account["password_hash"] if account else None
        if not await self.hasher.verify(password_hash, password) or account is None:
            await throttle.fail(self.db, signin_key(email))
            await record(self.db, context, "signin.failed", account["user_id"] if account else None)
            raise InvalidCredentialsError
        self.may_sign_in(account)
        methods = await self.second_factor_methods(account["user_id"])
        async with self.db.transaction() as connection:
            await throttle.clear(connection, signin_key(email))
            if self.hasher.outdated(account["password_hash"]):
                rehashed = await self.hasher.hash(password)
                await repository.set_password(connection, account["user_id"], rehashed)
            if not methods:
                return await self.open_session(connection, context, account, ["pwd"], replacing)
            token = await repository.new_challenge(
                connection,
                user_id=account["user_id"],
                purpose="second-factor",
                ttl=CHALLENGE_TTL,
                replacing=replacing,
            )
        raise SecondFactorRequiredError(token, methods)

    def may_sign_in(self, account: asyncpg.Record) -> None:
        """Refuse an account that is disabled or whose address is unverified."""
        if account["disabled_at"] is not None:
            raise DisabledAccountError
        if account["email_verified_at"] is None:
            raise UnverifiedEmailError

    async def second_factor_methods(self, user_id: int) -> list[str]:
        """The second factors the account has, as a sign-in names them."""
        factors = await repository.second_factors(self.db, user_id)
        return [
            method
            for method, enrolled in (
                ("totp", factors["totp"]),
                ("recovery_code", factors["totp"] and factors["recovery_codes"]),
                ("webauthn", factors["passkeys"]),
            )
            if enrolled
        ]

    async def open_session(
        self,
        connection: Connection,
        context: Context,
        account: asyncpg.Record,
        amr: list[str],
        replacing: UUID | None,
    ) -> Opened:
        """The last step of every way in: a session, signed in to with `amr` (RFC 8176),
        recorded; the session it replaces, if any, ended."""
        user_id = account["user_id"]
        await repository.signed_in(connection, user_id, None)
        session_id = await repository.open_session(
            connection,
            user_id=user_id,
            ttl=self.settings.auth_refresh_ttl,
            client_address=context.client_address,
            user_agent=context.user_agent,
            amr=amr,
        )
        details = {"session": str(session_id), "amr": amr}
        await record(connection, context, "signin.succeeded", user_id, **details)
        if replacing is not None:
            await self._end(connection, context, replacing, reason="signed in again")
        return Opened(user_id, session_id, account["scopes"], amr)

    async def log_in(self, context: Context, *, email: str, password: str) -> dict[str, object]:
        """Sign in for a token pair (the API)."""
        return await self.token_pair(await self.sign_in(context, email=email, password=password))

    async def token_pair(self, opened: Opened) -> dict[str, object]:
        """The tokens of a session just opened (the API's way of holding one)."""
        async with self.db.transaction() as connection:
            refresh = await repository.issue_refresh(connection, opened.session_id)
        return await self._pair(opened, refresh)

    async def _pair(self, opened: Opened, refresh: str) -> dict[str, object]:
        access = await self.signer.issue(
            user_id=opened.user_id,
            session_id=opened.session_id,
            scopes=opened.scopes,
            amr=opened.amr,
        )
        return {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": int(self.settings.auth_access_ttl.total_seconds()),
            "refresh_token": refresh,
        }

    async def refresh(self, context: Context, token: str) -> dict[str, object]:
        """A new token pair for a refresh token, used up; a used one ends its session."""
        rotated = await self.rotate_refresh(token)
        if rotated is None:
            if await self.end_replayed(context, token):
                raise RefreshTokenReusedError
            raise InvalidRefreshTokenError
        used, refresh = rotated
        opened = Opened(used["user_id"], used["session_id"], used["scopes"], used["amr"])
        return await self._pair(opened, refresh)

    async def rotate_refresh(
        self, token: str, client_id: str | None = None
    ) -> tuple[asyncpg.Record, str] | None:
        """Use a refresh token of a live session (a person's own, or with `client_id` that
        application's grant) once, and issue its successor: the session and the new token,
        or None. One UPDATE decides: of parallel uses one wins."""
        async with self.db.transaction() as connection:
            used = await repository.use_refresh(
                connection, token, self.settings.auth_refresh_idle_ttl, client_id
            )
            if used is None:
                return None
            await repository.touch_session(connection, used["session_id"])
            return used, await repository.issue_refresh(connection, used["session_id"])

    async def end_replayed(
        self, context: Context, token: str, client_id: str | None = None
    ) -> asyncpg.Record | None:
        """A used refresh token comes back: it was stolen, or its holder's copy was. Either
        way its whole session ends (with `client_id`, only if it is that application's
        grant): the session, if it did."""
        async with self.db.transaction() as connection:
            session = await repository.replayed_session(connection, token)
            if session is None or (client_id is not None and session["client_id"] != client_id):
                return None
            await self._end(connection, context, session["id"], reason="refresh token reused")
        return session

    async def _end(
        self, connection: Connection, context: Context, session_id: UUID, *, reason: str
    ) -> None:
        """End a session, whoever's it is, recording why (if it was live)."""
        ended = await repository.revoke_session(connection, session_id)
        if ended is not None:
            await record(
                connection,
                context,
                "session.revoked",
                ended,
                session=str(session_id),
                reason=reason,
            )

    async def end_session(self, context: Context, user_id: int, session_id: UUID) -> bool:
        """End one live session of the user; whether there was one."""
        await self.may_act_on(context, user_id, "end a session of")
        async with self.db.transaction() as connection:
            ended = await repository.revoke_session(connection, session_id, user_id) is not None
            if ended:
                await record(
                    connection, context, "session.revoked", user_id, session=str(session_id)
                )
        return ended

    async def sessions(self, user_id: int) -> list[asyncpg.Record]:
        """The user's live sessions, oldest first."""
        return await repository.live_sessions(self.db, user_id)

    async def principal(self, token: str) -> Principal | None:
        """Who a person's access token speaks for (checked at most once a second per token
        and worker by the guard); None when the token is not one of ours."""
        if not self.signer.ours(token):
            return None
        try:
            claims = await self.signer.verify(token)
        except InvalidAccessTokenError as exc:
            raise UnauthenticatedError(str(exc)) from None
        scopes, expires_at = frozenset(str(claims.get("scope", "")).split()), float(claims["exp"])
        client_id = claims.get("client_id")
        if "sid" not in claims:  # an application's own (client_credentials)
            client = await self.client(str(client_id))
            if client is None:
                raise UnauthenticatedError("The application is no longer registered.")
            held = scopes & frozenset(client["scopes"])
            return Principal(f"client:{client_id}", held, expires_at, client_id=client["id"])
        user_id, session_id = int(claims["sub"]), UUID(claims["sid"])
        session = await repository.session_scopes(self.db, session_id, user_id)
        if session is None:
            raise UnauthenticatedError("The session has ended; sign in again.")
        # A scope taken away stops working at once; a new one comes with the next token.
        held, needs = self.scopes_held(scopes & frozenset(session["scopes"]), session["amr"])
        return Principal(f"user:{user_id}", held, expires_at, user_id, session_id, needs, client_id)

    def scopes_held(self, scopes: frozenset[str], amr: list[str]) -> tuple[frozenset[str], bool]:
        """The scopes a session may use, and whether its account's scopes wait for a sign-in
        with two factors (AUTH_OPERATOR_MFA=required, the default)."""
        if scopes and "mfa" not in amr and self.settings.auth_operator_mfa == "required":
            return frozenset(), True
        return scopes, False

    async def visitor(self, session_id: UUID) -> asyncpg.Record | None:
        """The account signed in to a browser's session, while the session is live and the
        account enabled (its use recorded)."""
        return await repository.visitor(self.db, session_id)
