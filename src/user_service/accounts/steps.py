"""The steps every flow of the accounts service is made of: throttles, the password rules,
one-time links, queued emails. Flows (signin.py, selfservice.py, operators.py) combine them;
nothing outside the service calls a step alone."""

import functools
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn, ParamSpec
from urllib.parse import urlencode

import asyncpg

from .. import mail
from ..addresses import key
from ..audit.repository import record
from ..config import Settings
from ..context import Context
from ..crypto import Cipher
from ..database import Connection, Database
from ..errors import InvalidInputError
from ..provider import repository as apps
from . import emails, passwords, repository, throttle
from .errors import (
    InvalidCredentialsError,
    NoAccountError,
    NotPermittedError,
    TooManyRequestsError,
    WrongPasswordError,
)
from .keys import Signer

logger = logging.getLogger(__name__)

P = ParamSpec("P")


def after_answer(
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


# The OpenID clients this worker read lately, by id: when, and the row.
_CLIENTS: dict[str, tuple[float, asyncpg.Record]] = {}

# The page each purpose of a one-time link opens.
_PAGES = {"verify": "verify", "reset": "reset-password"}


def signin_key(email: str) -> str:
    """The key of an address's failed sign-ins (by the address given, known or not: the
    count gives nothing away), one for every spelling of it."""
    return f"signin:{key(email)}"


@dataclass
class Steps:
    """What the flows need: one per worker, built at startup."""

    db: Database
    settings: Settings
    cipher: Cipher
    hasher: passwords.Hasher
    signer: Signer
    outbox: mail.Sender

    # Throttles

    async def limit_address(self, action: str, context: Context) -> None:
        """Count a request of `action` from the caller's address: 429 past the limit."""
        limit = self.settings.auth_address_limit_per_minute
        key = f"{action}:{context.client_address or 'unknown'}"
        retry_after = await throttle.hit(self.db, key, limit)
        if retry_after is not None:
            raise TooManyRequestsError(retry_after, "requests from this address")

    async def may_mail(self, connection: Connection, kind: str, email: str) -> bool:
        # At most one email of each kind per address per minute: nobody can be mail-bombed.
        return await throttle.hit(connection, f"mail:{kind}:{key(email)}", 1) is None

    async def failures_allowed(self, email: str, what: str) -> None:
        """429 while the address waits after repeated failures."""
        retry_after = await throttle.blocked_for(self.db, signin_key(email))
        if retry_after is not None:
            raise TooManyRequestsError(retry_after, what)

    # The OpenID Provider's clients

    async def client(self, client_id: str) -> asyncpg.Record | None:
        """A registered client, as this worker saw it within AUTH_TOKEN_CACHE_SECONDS: the
        token endpoint and the API ask for one on every request."""
        seen = _CLIENTS.get(client_id)
        if seen is not None and time.monotonic() - seen[0] < self.settings.auth_token_cache_seconds:
            return seen[1]
        client = await apps.client(self.db, client_id)
        if client is not None:
            if len(_CLIENTS) >= 10_000:
                _CLIENTS.clear()
            _CLIENTS[client_id] = (time.monotonic(), client)
        return client

    # Who may do what

    def within(self, context: Context, user_id: int) -> list[str] | None:
        """The scopes an account may hold for `context`'s actor to change it: its own, or
        None when it may change any (the CLI, or a person acting on their own account)."""
        if context.scopes is None or context.user_id == user_id:
            return None
        return sorted(context.scopes)

    async def may_act_on(self, context: Context, user_id: int, action: str) -> None:
        """No operator or token acts on an account that holds more scopes than it does: a
        403 then, recorded, before anything changes."""
        within = self.within(context, user_id)
        if within is None:
            return
        beyond = set(await repository.scopes_of(self.db, user_id)) - set(within)
        if beyond:
            await self.refuse(context, user_id, f"{action} this account", beyond)

    async def refuse(
        self, context: Context, user_id: int | None, what: str, lacking: set[str]
    ) -> NoReturn:
        """Record that the actor may not do `what` for `lacking` scopes; raise the 403."""
        details = {"action": what, "lacking": sorted(lacking)}
        await record(self.db, context, "operator.refused", user_id, **details)
        raise NotPermittedError(what, lacking)

    # Passwords

    def check_password(self, password: str, *, email: str, name: str) -> None:
        why = passwords.problem(
            password, email=email, name=name, min_length=self.settings.password_min_length
        )
        if why is not None:
            raise InvalidInputError(("body", "password"), f"The password {why}.")

    async def new_password(self, password: str, *, email: str, name: str) -> str:
        """The hash of a new password that passes the rules (else a 422 saying why)."""
        self.check_password(password, email=email, name=name)
        return await self.hasher.hash(password)

    async def confirm(self, context: Context, user_id: int, password: str) -> asyncpg.Record:
        """The account, once its password is given again (failures count as sign-ins')."""
        account = await repository.by_id(self.db, user_id)
        if account is None:
            raise InvalidCredentialsError
        await self.failures_allowed(account["email"], "wrong passwords for this account")
        if not await self.hasher.verify(account["password_hash"], password):
            await throttle.fail(self.db, signin_key(account["email"]))
            await record(self.db, context, "password.confirm_failed", user_id)
            raise WrongPasswordError
        return account

    async def account(self, user_id: int) -> asyncpg.Record:
        account = await repository.by_id(self.db, user_id)
        if account is None:
            raise NoAccountError(user_id)
        return account

    # Emails and their links

    def link(self, page: str, token: str | None = None) -> str:
        query = "" if token is None else "?" + urlencode({"token": token})
        return f"{self.settings.link_base}/account/{page}{query}"

    async def send(self, connection: Connection, to: str, message: emails.Message) -> None:
        """Queue `message` in the caller's transaction; call `sent` once it commits."""
        await mail.enqueue(connection, self.cipher, message.to(to), self.settings.mail_from)

    def sent(self) -> None:
        """Queued emails have committed: deliver them now."""
        self.outbox.wake()

    async def new_link(
        self, connection: Connection, user_id: int, email: str, purpose: str, ttl: timedelta
    ) -> str:
        """A one-time link to the page of `purpose` for `email`; older ones of that purpose
        stop working."""
        await repository.drop_links(connection, user_id, purpose)
        token = await repository.issue_link(
            connection, user_id=user_id, purpose=purpose, email=email, ttl=ttl
        )
        return self.link(_PAGES[purpose], token)

    async def send_verification(self, connection: Connection, user_id: int, email: str) -> None:
        ttl = self.settings.auth_verify_ttl
        link = await self.new_link(connection, user_id, email, "verify", ttl)
        hours = int(ttl.total_seconds() // 3600)
        await self.send(connection, email, emails.verification(email, hours, link))

    async def send_reset(self, connection: Connection, user_id: int, email: str) -> None:
        ttl = self.settings.auth_reset_ttl
        link = await self.new_link(connection, user_id, email, "reset", ttl)
        minutes = int(ttl.total_seconds() // 60)
        await self.send(connection, email, emails.reset(minutes, link))
