"""What a person does for themselves: sign up, verify the address, reset a forgotten
password, and change their name, password or address, or delete the account."""

from uuid import UUID

import asyncpg

from ..addresses import key
from ..audit.repository import record
from ..context import Context
from ..database import Connection
from . import emails, repository, throttle
from .errors import EmailTakenError, InvalidLinkError
from .steps import Steps, after_answer, signin_key


class SelfService(Steps):
    async def register(self, context: Context, *, email: str, password: str, name: str) -> None:
        """Create an account; the address gets a link to verify it. The answer is the same
        whether or not the address has an account (its owner gets an email saying so)."""
        await self.limit_address("register", context)
        password_hash = await self.new_password(password, email=email, name=name)
        await context.later(
            self._register(context, email=email, password_hash=password_hash, name=name)
        )

    @after_answer
    async def _register(
        self, context: Context, *, email: str, password_hash: str, name: str
    ) -> None:
        async with self.db.transaction() as connection:
            user_id = await repository.create(
                connection, email=email, password_hash=password_hash, name=name
            )
            if user_id is not None:
                await record(connection, context, "account.registered", user_id)
                await self.send_verification(connection, user_id, email)
            elif await self.may_mail(connection, "taken", email):
                await self.send(connection, email, emails.taken(self.link("forgot-password")))
        self.sent()

    async def verify(self, context: Context, token: str) -> None:
        """Verify an address with the emailed link's token (single use)."""
        await self.limit_address("verify", context)
        async with self.db.transaction() as connection:
            link = await repository.use_link(connection, token, "verify")
            if link is None:
                raise InvalidLinkError
            account = await repository.by_id(connection, link["user_id"])
            if not await repository.verify_email(connection, link["user_id"], link["email"]):
                raise EmailTakenError
            if account is not None and key(account["email"]) != key(link["email"]):
                # A new address: a reset link mailed to the old one must not open it.
                await repository.drop_links(connection, link["user_id"], "reset")
            await record(
                connection, context, "email.verified", link["user_id"], email=link["email"]
            )

    async def resend(self, context: Context, email: str) -> None:
        """Send the verification link again, if the address has an unverified account."""
        await self.limit_address("verify", context)
        await context.later(self._resend(email))

    @after_answer
    async def _resend(self, email: str) -> None:
        account = await repository.by_email(self.db, email)
        if account is None or account["email_verified_at"] is not None:
            return
        async with self.db.transaction() as connection:
            if await self.may_mail(connection, "verify", email):
                await self.send_verification(connection, account["user_id"], account["email"])
        self.sent()

    async def forgot(self, context: Context, email: str) -> None:
        """Email a link to choose a new password, if the address has an account."""
        await self.limit_address("forgot", context)
        await context.later(self._forgot(email))

    @after_answer
    async def _forgot(self, email: str) -> None:
        account = await repository.by_email(self.db, email)
        if account is None:
            return
        async with self.db.transaction() as connection:
            if not await self.may_mail(connection, "reset", email):
                return
            await self.send_reset(connection, account["user_id"], account["email"])
        self.sent()

    async def reset(self, context: Context, token: str, password: str) -> None:
        """Choose a new password with the emailed link's token: every session ends."""
        await self.limit_address("forgot", context)
        link = await repository.peek_link(self.db, token, "reset")
        if link is None:
            raise InvalidLinkError
        account = await repository.by_id(self.db, link["user_id"])
        if account is None:
            raise InvalidLinkError
        password_hash = await self.new_password(
            password, email=account["email"], name=account["nickname"]
        )
        async with self.db.transaction() as connection:
            used = await repository.use_link(connection, token, "reset")
            if used is None:
                raise InvalidLinkError
            await repository.drop_links(connection, account["user_id"], "reset")
            await repository.set_password(connection, account["user_id"], password_hash)
            await repository.prove_email(connection, account["user_id"], used["email"])
            await repository.revoke_sessions(connection, account["user_id"])
            await throttle.clear(connection, signin_key(account["email"]))
            await record(connection, context, "password.reset", account["user_id"])
            await self._password_changed(connection, account["email"])
        self.sent()

    async def _password_changed(self, connection: Connection, email: str) -> None:
        await self.send(connection, email, emails.password_changed(self.link("forgot-password")))

    async def me(self, user_id: int) -> asyncpg.Record | None:
        """The person's account, if it still exists."""
        return await repository.by_id(self.db, user_id)

    async def rename_me(self, context: Context, user_id: int, name: str) -> None:
        async with self.db.transaction() as connection:
            await repository.rename(connection, user_id, name)
            await record(connection, context, "user.renamed", user_id)

    async def change_password(
        self, context: Context, user_id: int, session_id: UUID, current: str, new: str
    ) -> None:
        """A new password, the current one given again; every other session ends."""
        account = await self.confirm(context, user_id, current)
        password_hash = await self.new_password(
            new, email=account["email"], name=account["nickname"]
        )
        async with self.db.transaction() as connection:
            await repository.set_password(connection, user_id, password_hash)
            await repository.drop_links(connection, user_id, "reset")  # mailed for the old one
            await repository.revoke_sessions(connection, user_id, keep=session_id)
            await record(connection, context, "password.changed", user_id)
            await self._password_changed(connection, account["email"])
        self.sent()

    async def change_email(self, context: Context, user_id: int, password: str, email: str) -> None:
        """A new address, the password given again: it changes once verified."""
        account = await self.confirm(context, user_id, password)
        async with self.db.transaction() as connection:
            await self.send_verification(connection, user_id, email)
            await self.send(connection, account["email"], emails.email_change_requested(email))
            await record(connection, context, "email.change_requested", user_id, email=email)
        self.sent()

    async def delete_me(self, context: Context, user_id: int, password: str) -> None:
        """Delete the account, for good, the password given again."""
        account = await self.confirm(context, user_id, password)
        async with self.db.transaction() as connection:
            await repository.delete(connection, user_id)
            await record(connection, context, "account.deleted", user_id, email=account["email"])
