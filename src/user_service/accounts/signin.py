"""Signing in and what a sign-in opens: the pipeline every way in goes through (the address
throttle, the account's failure count, the password, the account's state, a session, the
audit), refresh tokens, sessions, and the check of an access token."""

from dataclasses import dataclass
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
    UnverifiedEmailError,
)
from .keys import InvalidAccessTokenError
from .steps import Steps, signin_key


@dataclass(frozen=True, slots=True)
class Opened:
    """A session a sign-in opened."""

    user_id: int
    session_id: UUID
    scopes: list[str]


class SignIn(Steps):
    async def sign_in(
        self, context: Context, *, email: str, password: str, replacing: UUID | None = None
    ) -> Opened:
        """Check the password and open a session (a page keeps it in a cookie), ending the
        one it replaces (a browser's earlier session), if any."""
        await self.limit_address("login", context)
        await self.failures_allowed(email, "failed sign-ins for this account")
        account = await repository.by_email(self.db, email)
        # Hashing first: an unknown address takes as long as a wrong password.
        password_hash = account["password_hash"] if account else None
        if not await self.hasher.verify(password_hash, password) or account is None:
            await throttle.fail(self.db, signin_key(email))
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
            await throttle.clear(connection, signin_key(email))
            await repository.signed_in(connection, account["user_id"], rehashed)
            session_id = await repository.open_session(
                connection,
                user_id=account["user_id"],
                ttl=self.settings.auth_refresh_ttl,
                client_address=context.client_address,
                user_agent=context.user_agent,
            )
            await record(
                connection, context, "signin.succeeded", account["user_id"], session=str(session_id)
            )
            if replacing is not None:
                await self._end(connection, context, replacing, reason="signed in again")
        return Opened(account["user_id"], session_id, account["scopes"])

    async def log_in(self, context: Context, *, email: str, password: str) -> dict[str, object]:
        """Sign in for a token pair (the API)."""
        opened = await self.sign_in(context, email=email, password=password)
        async with self.db.transaction() as connection:
            refresh = await repository.issue_refresh(connection, opened.session_id)
        return await self._pair(opened.user_id, opened.session_id, opened.scopes, refresh)

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
        """A new token pair for a refresh token, used up; a used one ends its session."""
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
            await self._end(connection, context, session["id"], reason="refresh token reused")
        raise RefreshTokenReusedError

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
        user_id, session_id = int(claims["sub"]), UUID(claims["sid"])
        scopes = await repository.session_scopes(self.db, session_id, user_id)
        if scopes is None:
            raise UnauthenticatedError("The session has ended; sign in again.")
        # A scope taken away stops working at once; a new one comes with the next token.
        granted = frozenset(str(claims.get("scope", "")).split()) & frozenset(scopes)
        return Principal(f"user:{user_id}", granted, float(claims["exp"]), user_id, session_id)

    async def visitor(self, session_id: UUID) -> asyncpg.Record | None:
        """The account signed in to a browser's session, while the session is live and the
        account enabled (its use recorded)."""
        return await repository.visitor(self.db, session_id)
