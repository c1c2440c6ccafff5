"""Signing in through a company's identity provider (upstream/): one more way in, through
the same pipeline (the address throttle, the account's state, the second factor, a session,
the audit). An identity (provider, subject) belongs to one account."""

from typing import Any
from uuid import UUID

import asyncpg
from pydantic import TypeAdapter, ValidationError

from ..addresses import Email
from ..audit.repository import record
from ..context import Context
from ..database import Connection
from ..upstream import repository as identities
from . import emails, repository
from .errors import (
    AddressInUseError,
    LastWayInError,
    NoAddressError,
    SecondFactorRequiredError,
)
from .signin import CHALLENGE_TTL, Opened, SignIn

# What a provider says the address is must be one, by the rules a person's must follow.
_ADDRESS = TypeAdapter(Email)
# The password hash of an account made through a provider: no password matches it (argon2
# refuses it as a hash) until the person sets one through "forgot password".
NO_PASSWORD = "!"  # noqa: S105 (no password: a marker no hash equals)


class Identities(SignIn):
    async def sign_in_upstream(
        self,
        context: Context,
        *,
        provider: str,
        label: str,
        claims: dict[str, Any],
        replacing: UUID | None = None,
    ) -> Opened:
        """Sign in with the verified ID token `claims` of `provider`: to the identity's
        account; or, for a new identity, to the verified account of the address the provider
        vouches for (linked, its owner told); or to a new account. An address the provider
        has not verified never links to an account. The second factor still applies."""
        await self.limit_address("upstream", context)
        subject = str(claims["sub"])
        async with self.db.transaction() as connection:
            known = await identities.identity(connection, provider, subject)
            if known is not None:
                user_id = known["user_id"]
            else:
                user_id = await self._first(connection, context, provider, label, subject, claims)
            account = await repository.by_id(connection, user_id)
        self.sent()
        assert account is not None  # noqa: S101 (the transaction found or made it)
        self.may_sign_in(account)
        factor = f"fed:{provider}"  # amr-style: federated, through this provider
        if methods := await self.second_factor_methods(user_id):
            async with self.db.transaction() as connection:
                token = await repository.new_challenge(
                    connection,
                    user_id=user_id,
                    purpose="second-factor",
                    ttl=CHALLENGE_TTL,
                    replacing=replacing,
                    first_factor=factor,
                )
            raise SecondFactorRequiredError(token, methods)
        async with self.db.transaction() as connection:
            return await self.open_session(connection, context, account, [factor], replacing)

    async def _first(
        self,
        connection: Connection,
        context: Context,
        provider: str,
        label: str,
        subject: str,
        claims: dict[str, Any],
    ) -> int:
        """The account a new identity belongs to: linked or made now."""
        try:
            email = _ADDRESS.validate_python(claims.get("email"))
        except ValidationError:
            raise NoAddressError from None
        vouched = claims.get("email_verified") is True
        account = await repository.by_email(connection, email)
        if account is not None:
            if not vouched or account["email_verified_at"] is None:
                raise AddressInUseError
            user_id: int = account["user_id"]
            notice = emails.identity_linked(label, self.link("forgot-password"))
            await self.send(connection, account["email"], notice)
        else:
            given = claims.get("name")
            name = "".join(c for c in str(given or "") if c.isprintable()).strip()[:100]
            made = await repository.create(
                connection,
                email=email,
                password_hash=NO_PASSWORD,
                name=name or email.partition("@")[0][:100],
            )
            if made is None:  # made meanwhile by another request
                raise AddressInUseError
            user_id = made
            await record(connection, context, "account.registered", user_id, provider=provider)
            if vouched:
                await repository.verify_email(connection, user_id, email)
            else:  # the person proves it here, as at sign-up
                await self.send_verification(connection, user_id, email)
        await identities.link(connection, provider, subject, user_id, email)
        await record(connection, context, "identity.linked", user_id, provider=provider)
        return user_id

    async def refuse_callback(self, context: Context, provider: str, why: str) -> None:
        """Record a callback from a provider that signed nobody in, and why."""
        await record(self.db, context, "identity.refused", None, provider=provider, why=why)

    async def identities(self, user_id: int) -> list[asyncpg.Record]:
        return await identities.of(self.db, user_id)

    async def unlink(self, context: Context, user_id: int, provider: str, subject: str) -> bool:
        """Unlink one of the account's identities, while another way in remains (a
        password, a passkey or another identity); whether there was such an identity."""
        async with self.db.transaction() as connection:
            linked = await identities.of(connection, user_id)
            if not any(i["provider"] == provider and i["subject"] == subject for i in linked):
                return False
            account = await repository.by_id(connection, user_id)
            password = account is not None and account["password_hash"] != NO_PASSWORD
            if (
                not password
                and len(linked) < 2
                and not await repository.passkeys(connection, user_id)
            ):
                raise LastWayInError
            await identities.unlink(connection, user_id, provider, subject)
            await record(connection, context, "identity.unlinked", user_id, provider=provider)
        return True
