"""What operators do to others' users and accounts (from the console, the users API or the
CLI): each change is recorded with the operator as its actor. And the API tokens and scopes
that make operators."""

from datetime import timedelta
from typing import NoReturn

from ..audit.kinds import Kind
from ..audit.repository import record
from ..auth import tokens
from ..context import Context
from ..users import repository as users
from ..users.schemas import UserRead
from . import emails, repository
from .errors import EmailTakenError, NoUserError, OwnAccountError, ScopeBeyondError
from .steps import Steps

# The password hash of an invited person until they choose one: not an argon2 hash, so that
# no password matches it (Hasher.verify answers False).
INVITED = "!invited"


class Operators(Steps):
    async def create_user(self, context: Context, *, name: str) -> UserRead:
        """A user without an account (nobody signs in as it)."""
        return await users.create(self.db, context, nickname=name)

    async def invite(self, context: Context, *, name: str, email: str) -> int:
        """A new user with an account that has no password yet: the person gets a link to
        choose one (using it verifies the address). The new user's id."""
        ttl = self.settings.auth_verify_ttl
        async with self.db.transaction() as connection:
            user_id = await repository.create(
                connection, email=email, password_hash=INVITED, name=name
            )
            if user_id is None:
                raise EmailTakenError
            # A link to choose a password is a reset link (using it proves the address).
            link = await self.new_link(connection, user_id, email, "reset", ttl)
            hours = int(ttl.total_seconds() // 3600)
            await self.send(connection, email, emails.invitation(name, hours, link))
            await record(connection, context, "user.invited", user_id, email=email)
        self.sent()
        return user_id

    async def rename_user(self, context: Context, user_id: int, name: str) -> UserRead:
        within = self.within(context, user_id)
        renamed = await users.rename(
            self.db, context, user_id=user_id, nickname=name, within=within
        )
        if renamed is None:
            await self._not_done(context, user_id, "rename")
        return renamed

    async def delete_user(self, context: Context, user_id: int) -> None:
        """Delete the user, its account and sessions with it (of concurrent deletes, one
        succeeds; the others find nobody)."""
        within = self.within(context, user_id)
        if not await users.delete(self.db, context, user_id=user_id, within=within):
            await self._not_done(context, user_id, "delete")

    async def _not_done(self, context: Context, user_id: int, action: str) -> NoReturn:
        # The statement found nobody it may change: a user it may not change, or nobody.
        await self.may_act_on(context, user_id, action)
        raise NoUserError(user_id)

    async def set_disabled(self, context: Context, user_id: int, disabled: bool) -> None:
        """Disable the account, ending every session (sign-in is refused), or enable it."""
        await self.account(user_id)
        await self.may_act_on(context, user_id, "disable" if disabled else "enable")
        async with self.db.transaction() as connection:
            if await repository.set_disabled(connection, user_id, disabled):
                if disabled:
                    await repository.revoke_sessions(connection, user_id)
                kind: Kind = "user.disabled" if disabled else "user.enabled"
                await record(connection, context, kind, user_id)

    async def end_sessions(self, context: Context, user_id: int) -> None:
        """End every session of the user: each device must sign in again."""
        await self.may_act_on(context, user_id, "end the sessions of")
        async with self.db.transaction() as connection:
            await repository.revoke_sessions(connection, user_id)
            await record(connection, context, "user.sessions_revoked", user_id)

    async def replace_email(self, context: Context, user_id: int, email: str) -> None:
        """Give the account a new address, unverified: a link to verify it goes there, a
        notice to the old one; sign-in waits for the verification, and every session ends
        (as after a password change)."""
        account = await self.account(user_id)
        await self.may_act_on(context, user_id, "change the email of")
        async with self.db.transaction() as connection:
            if not await repository.replace_email(connection, user_id, email):
                raise EmailTakenError
            # A reset link sent to the old address must not open the account any more.
            await repository.drop_links(connection, user_id, "reset")
            await repository.revoke_sessions(connection, user_id)
            await self.send_verification(connection, user_id, email)
            await self.send(connection, account["email"], emails.email_changed_by_operator(email))
            await record(
                connection,
                context,
                "user.email_changed_by_admin",
                user_id,
                old=account["email"],
                new=email,
            )
        self.sent()

    async def reset_for(self, context: Context, user_id: int) -> None:
        """Email the person a link to choose a new password (as they could ask themselves)."""
        account = await self.account(user_id)
        await self.may_act_on(context, user_id, "send a password reset to")
        async with self.db.transaction() as connection:
            await self.send_reset(connection, user_id, account["email"])
            await record(connection, context, "user.reset_sent", user_id, email=account["email"])
        self.sent()

    async def set_scopes(
        self, context: Context, email: str, scopes: list[str], *, add: bool
    ) -> list[str] | None:
        """Grant scopes to the account of `email` (or take them away): its scopes after, or
        None when no account has that address. A grant comes with the next access token; a
        scope taken away stops working at once. Nobody grants or takes away what they lack,
        nor changes an account that holds more than they do."""
        account = await repository.by_email(self.db, email)
        if account is not None:
            action = "grant scopes to" if add else "take scopes from"
            await self.may_act_on(context, account["user_id"], action)
            if context.scopes is not None and not set(scopes) <= context.scopes:
                what = f"{action} this account"
                await self.refuse(context, account["user_id"], what, set(scopes) - context.scopes)
        async with self.db.transaction() as connection:
            account = await repository.by_email(connection, email)
            after = await repository.set_scopes(connection, email, scopes, add=add)
            if account is not None:
                kind: Kind = "scopes.granted" if add else "scopes.revoked"
                await record(connection, context, kind, account["user_id"], scopes=scopes)
        return after

    async def clear_second_factors(self, context: Context, user_id: int) -> None:
        """Take every second factor off someone else's account (they lost theirs): the next
        sign-in asks for the password alone."""
        if context.user_id == user_id:
            raise OwnAccountError
        account = await self.account(user_id)
        await self.may_act_on(context, user_id, "clear the second factors of")
        async with self.db.transaction() as connection:
            await repository.clear_second_factors(connection, user_id)
            await record(connection, context, "mfa.cleared", user_id)
            text = (
                "The sign-in of your account changed. An operator took its second factors off:"
                " the next sign-in asks for the password alone."
            )
            message = emails.second_factor_changed(text, self.link("forgot-password"))
            await self.send(connection, account["email"], message)
        self.sent()

    # API tokens

    async def api_tokens(self) -> list[tokens.TokenInfo]:
        """Every API token, revoked and expired ones too (never a secret)."""
        return await tokens.list_all(self.db)

    async def create_token(
        self,
        context: Context,
        *,
        name: str,
        scopes: list[str],
        expires_in: timedelta | None = None,
    ) -> str:
        """A new API token, its creation recorded: the secret, which exists nowhere else.
        Never with a scope its creator lacks (a token is not a way to gain a scope)."""
        beyond = set(scopes) - context.scopes if context.scopes is not None else set()
        if beyond:
            details = {"action": "create a token", "lacking": sorted(beyond)}
            await record(self.db, context, "operator.refused", None, **details)
            raise ScopeBeyondError(beyond)
        async with self.db.transaction() as connection:
            secret = await tokens.create(connection, name, scopes, expires_in)
            await record(connection, context, "api_token.created", None, name=name, scopes=scopes)
        return secret

    async def revoke_token(self, context: Context, name: str) -> bool:
        """Revoke the live token of this name, recorded; whether there was one. Nobody
        revokes a token that holds more than they do."""
        held = await tokens.live_scopes(self.db, name)
        beyond = set(held or ()) - context.scopes if context.scopes is not None else set()
        if beyond:
            await self.refuse(context, None, f"revoke the token {name!r}", beyond)
        async with self.db.transaction() as connection:
            revoked = await tokens.revoke(connection, name)
            if revoked:
                await record(connection, context, "api_token.revoked", None, name=name)
        return revoked
