"""Webhooks' flows: endpoints subscribed, changed, deleted, given a new secret, and their
deliveries read and retried. The events themselves are queued by the changes they tell of
(webhooks/events.py); webhooks/delivery.py sends them."""

from typing import Any

import asyncpg

from ..audit.repository import record
from ..context import Context
from ..errors import InvalidInputError
from ..webhooks import repository, signing, targets
from .errors import NoDeliveryError, NoWebhookError
from .steps import Steps


class Webhooks(Steps):
    async def _checked(self, url: str, loc: tuple[str, ...]) -> str:
        try:
            await targets.resolve(url, self.settings.webhook_allowed_networks)
        except targets.UnsafeTargetError as exc:
            raise InvalidInputError(loc, f"The URL {exc}.") from None
        return url

    async def create_webhook(
        self, context: Context, *, url: str, events: list[str], description: str
    ) -> dict[str, Any]:
        """Subscribe `url` to `events`; with its secret, shown this once."""
        await self._checked(url, ("body", "url"))
        secret = signing.new_secret()
        async with self.db.transaction() as connection:
            webhook = await repository.create(
                connection,
                url=url,
                events=events,
                description=description,
                secret=self.cipher.encrypt(secret.encode()),
                created_by=context.actor,
            )
            await record(connection, context, "webhook.created", None, webhook=webhook["id"])
        return {**dict(webhook), "secret": secret}

    async def webhook(self, webhook_id: int) -> asyncpg.Record:
        webhook = await repository.get(self.db, webhook_id)
        if webhook is None:
            raise NoWebhookError(webhook_id)
        return webhook

    async def webhooks_page(
        self, *, after: int | None, limit: int
    ) -> tuple[list[asyncpg.Record], bool]:
        return await repository.page(self.db, after=after, limit=limit)

    async def update_webhook(
        self, context: Context, webhook_id: int, changes: dict[str, Any]
    ) -> asyncpg.Record:
        """Change the URL (checked again), the events, the description, or whether it is
        enabled (enabling it again sends what waited meanwhile)."""
        if "url" in changes:
            await self._checked(changes["url"], ("body", "url"))
        async with self.db.transaction() as connection:
            webhook = await repository.update(connection, webhook_id, changes)
            if webhook is None:
                raise NoWebhookError(webhook_id)
            await record(
                connection,
                context,
                "webhook.updated",
                None,
                webhook=webhook_id,
                changed=sorted(changes),
            )
        return webhook

    async def delete_webhook(self, context: Context, webhook_id: int) -> None:
        """Delete the endpoint: nothing more is sent to it, what waited included."""
        async with self.db.transaction() as connection:
            if not await repository.delete(connection, webhook_id):
                raise NoWebhookError(webhook_id)
            await record(connection, context, "webhook.deleted", None, webhook=webhook_id)

    async def rotate_webhook_secret(self, context: Context, webhook_id: int) -> str:
        """A new secret, shown this once; the previous one signs too for a day."""
        secret = signing.new_secret()
        encrypted = self.cipher.encrypt(secret.encode())
        async with self.db.transaction() as connection:
            if not await repository.rotate(
                connection, webhook_id, encrypted, signing.ROTATION_OVERLAP
            ):
                raise NoWebhookError(webhook_id)
            await record(connection, context, "webhook.secret_rotated", None, webhook=webhook_id)
        return secret

    async def webhook_deliveries(
        self, webhook_id: int, *, before: int | None, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """The endpoint's deliveries, newest first, each with its attempts."""
        await self.webhook(webhook_id)
        rows, attempts, more = await repository.deliveries(
            self.db, webhook_id, before=before, limit=limit
        )
        return [
            {
                "id": row["id"],
                "event_id": row["event_id"],
                "type": row["type"],
                "created_at": row["created_at"],
                "state": row["state"],
                "next_attempt_at": row["next_attempt_at"] if row["state"] == "pending" else None,
                "attempts": [
                    {
                        "at": attempt["at"],
                        "status": attempt["status"],
                        "error": attempt["error"],
                        "duration_ms": attempt["duration_ms"],
                    }
                    for attempt in attempts[row["id"]]
                ],
            }
            for row in rows
        ], more

    async def retry_delivery(self, context: Context, webhook_id: int, event_id: str) -> None:
        """Attempt the event again now, whatever became of it (failed, or delivered)."""
        await self.webhook(webhook_id)
        async with self.db.transaction() as connection:
            if not await repository.retry(connection, webhook_id, event_id):
                raise NoDeliveryError(webhook_id, event_id)
            await record(
                connection, context, "webhook.retried", None, webhook=webhook_id, event=event_id
            )

    async def recent_deliveries(self, limit: int = 50) -> list[asyncpg.Record]:
        return await repository.recent_deliveries(self.db, limit)
