"""What operators read: users, one user with its account's state, the audit log, the
overview's counts. Reads go through the service as changes do, so that no route or page
reaches into a repository."""

import asyncpg

from ..audit import repository as audit
from ..users import repository as users
from ..users.repository import Cursor
from ..users.schemas import Sort, UserView
from . import repository
from .errors import NoUserError
from .steps import Steps


class Reports(Steps):
    async def users_page(
        self, *, sort: Sort, after: Cursor | None, search: str | None, limit: int
    ) -> tuple[list[UserView], bool]:
        """Up to `limit` users past `after` in `sort` order, those matching `search` if
        given; and whether more follow."""
        return await users.list_after(self.db, sort=sort, after=after, search=search, limit=limit)

    async def user_view(self, user_id: int) -> UserView:
        """A user as the users API shows it."""
        user = await users.get(self.db, user_id=user_id)
        if user is None:
            raise NoUserError(user_id)
        return user

    async def user(self, user_id: int) -> asyncpg.Record:
        """A user as operators see it: with its account's state, if it has an account."""
        user = await repository.operator_view(self.db, user_id)
        if user is None:
            raise NoUserError(user_id)
        return user

    async def audit_events(
        self,
        *,
        after: int | None,
        limit: int,
        user_id: int | None = None,
        kind: str | None = None,
        newest_first: bool = False,
    ) -> tuple[list[asyncpg.Record], bool]:
        """Up to `limit` audit events past the one with id `after`, oldest or newest first,
        only those about `user_id` or of `kind` when given; and whether more follow."""
        return await audit.events(
            self.db,
            after=after,
            limit=limit,
            user_id=user_id,
            kind=kind,
            newest_first=newest_first,
        )

    async def overview(self) -> asyncpg.Record:
        """Users, accounts, verified accounts, live sessions, and the last day's sign-ins
        and sign-ups."""
        return await repository.overview(self.db)

    async def daily(self, days: int) -> list[asyncpg.Record]:
        """Sign-ups and sign-ins on each of the last `days` days (UTC), oldest first."""
        return await audit.daily(self.db, days)
