"""Delivering queued events: each worker (WEBHOOK_DELIVERY) fans new events out to their
endpoints, then takes due deliveries one at a time on each of a few loops, holding the
delivery's row lock for the attempt, so that replicas share the work and no attempt is made
twice. At least once: an attempt whose outcome could not be recorded (the worker killed,
the database gone) is made again."""

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import h11
from prometheus_client import Counter, Gauge

from ..audit.repository import record
from ..config import Settings
from ..context import Context
from ..crypto import Cipher
from ..database import UNAVAILABLE, Database
from . import repository, signing, targets

logger = logging.getLogger(__name__)

POLL_INTERVAL = 1.0  # seconds between looks for due deliveries
LOOPS = 4  # attempts in flight per worker: one slow receiver does not hold up the rest
SYSTEM = Context("webhooks", scopes=None)

OUTCOMES = Counter(
    "webhook_deliveries_total",
    "Webhook delivery attempts, by outcome: delivered, retry (failed, tried again later), "
    "failed (given up), disabled (410 Gone: the endpoint is switched off).",
    ["outcome"],
)
# Each worker reads the same numbers from the database: the largest live one is the truth.
DEPTH = Gauge("webhook_queue_depth", "Webhook deliveries pending.", multiprocess_mode="livemax")
OLDEST = Gauge(
    "webhook_queue_oldest_seconds",
    "Age of the oldest pending webhook delivery.",
    multiprocess_mode="livemax",
)


class Deliverer:
    def __init__(self, db: Database, settings: Settings, cipher: Cipher) -> None:
        self.db = db
        self.settings = settings
        self.cipher = cipher
        self.tls = ssl.create_default_context()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        tasks = [asyncio.create_task(self.run(report=n == 0)) for n in range(LOOPS)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self, *, report: bool = False) -> None:
        """Deliver due events forever, looking every POLL_INTERVAL; and `report` the queue
        to the metrics."""
        while True:
            try:
                await self.deliver_due()
                if report:
                    depth, age = await repository.queue_stats(self.db)
                    DEPTH.set(depth)
                    OLDEST.set(age)
            except (*UNAVAILABLE, asyncpg.UndefinedTableError) as exc:
                # Down, or not migrated yet (/readyz says 503 meanwhile): expected, temporary.
                logger.warning("Webhook delivery waits for the database: %s", exc)
            except Exception:
                logger.exception("Webhook delivery failed; it retries soon")
            await asyncio.sleep(POLL_INTERVAL)

    async def deliver_due(self) -> int:
        """Fan out the events written meanwhile, then attempt each delivery due now once; how
        many were delivered."""
        while await repository.fan_out(self.db) == repository.FAN_OUT_BATCH:
            pass
        tried: list[int] = []
        delivered = 0
        while (outcome := await self._deliver_one(tried)) is not None:
            delivered += outcome
        return delivered

    async def _deliver_one(self, tried: list[int]) -> bool | None:
        async with self.db.transaction() as connection:
            row = await repository.claim(connection, tried)
            if row is None:
                return None
            tried.append(row["id"])
            secrets = [self.cipher.decrypt(row["secret"]).decode()]
            if row["previous_secret"] is not None:
                secrets.append(self.cipher.decrypt(row["previous_secret"]).decode())
            body = row["body"].encode()
            started = time.monotonic()
            status, error = await self._attempt(row["url"], row["event_id"], body, secrets)
            duration_ms = round((time.monotonic() - started) * 1000)
            outcome = "delivered" if status is not None and 200 <= status < 300 else "retry"
            next_attempt_at = None
            if outcome == "retry":
                wait = self._wait(row["attempts"])
                next_attempt_at = datetime.now(UTC) + wait
                if status == 410:
                    outcome = "disabled"
                elif next_attempt_at > row["created_at"] + self.settings.webhook_retry_for:
                    outcome = "failed"
            state = {"delivered": "delivered", "retry": "pending"}.get(outcome, "failed")
            await repository.attempted(
                connection,
                row["id"],
                status=status,
                error=error,
                duration_ms=duration_ms,
                state=state,
                next_attempt_at=next_attempt_at,
            )
            where = {"webhook": row["webhook_id"], "event": row["event_id"]}
            if outcome == "disabled":
                await repository.disable(connection, row["webhook_id"], "410 Gone")
                await record(connection, SYSTEM, "webhook.disabled", None, **where)
            elif outcome == "failed":
                await record(connection, SYSTEM, "webhook.failed", None, **where, error=error)
        OUTCOMES.labels(outcome).inc()
        log = logger.info if outcome == "delivered" else logger.warning
        log(
            "Webhook %s to endpoint %d: %s (%s)",
            row["event_id"],
            row["webhook_id"],
            outcome,
            status if status is not None else error,
        )
        return outcome == "delivered"

    def _wait(self, attempts: int) -> timedelta:
        """Before the next attempt: the schedule's step for this one (the last repeats), give
        or take a fifth, so that receivers back from an outage are not hit all at once."""
        delays = self.settings.webhook_retry_delays
        return delays[min(attempts, len(delays) - 1)] * random.uniform(0.8, 1.2)  # noqa: S311

    async def _attempt(
        self, url: str, event_id: str, body: bytes, secrets: list[str]
    ) -> tuple[int | None, str | None]:
        """POST the event: the receiver's status, or why there is none."""
        try:
            target = await targets.resolve(url, self.settings.webhook_allowed_networks)
        except targets.UnsafeTargetError as exc:
            return None, f"refused: the URL {exc}"
        headers = signing.headers(secrets, event_id, int(time.time()), body)
        try:
            async with asyncio.timeout(self.settings.webhook_timeout):
                return await self._post(target, body, headers), None
        except TimeoutError:
            return None, f"no answer within {self.settings.webhook_timeout:g} s"
        except (OSError, ValueError, h11.ProtocolError) as exc:  # ssl's errors are OSErrors
            return None, f"{type(exc).__name__}: {exc}"[:500]

    async def _post(self, target: targets.Target, body: bytes, headers: dict[str, str]) -> int:
        """One HTTP/1.1 POST to the checked address; redirects are not followed (a 3xx is
        a failure like any other non-2xx)."""
        reader, writer = await asyncio.open_connection(
            str(target.address),
            target.port,
            ssl=self.tls if target.https else None,
            server_hostname=target.host if target.https else None,
        )
        try:
            connection = h11.Connection(h11.CLIENT)
            request = h11.Request(
                method="POST",
                target=target.path,
                headers=[
                    ("Host", target.host_header),
                    ("User-Agent", "user-service-webhooks"),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Connection", "close"),
                    *headers.items(),
                ],
            )
            writer.write(
                connection.send(request)
                + connection.send(h11.Data(data=body))
                + connection.send(h11.EndOfMessage())
            )
            await writer.drain()
            while True:
                event = connection.next_event()
                if event is h11.NEED_DATA:
                    connection.receive_data(await reader.read(65536))
                elif isinstance(event, h11.Response):
                    return event.status_code
                elif isinstance(event, h11.ConnectionClosed):
                    raise ConnectionError("the receiver closed the connection without answering")
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
