"""Steady mixed load against a running service, recording every answer and every write the
service acknowledged, so that a run can tell what clients saw and whether anything was lost."""

import asyncio
import random
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field

import asyncpg
import httpx2

TRANSPORT_ERROR = 0  # the status recorded when no HTTP answer came back


@dataclass
class Sample:
    start: float  # monotonic seconds
    latency: float
    status: int


@dataclass
class Load:
    """`clients` clients, each sending `rate` requests a second: 70 % reads by id, 10 % list
    pages, 15 % creates, 5 % renames of a user the same client created."""

    url: str
    headers: dict[str, str]
    clients: int = 8
    rate: float = 25.0
    samples: list[Sample] = field(default_factory=list)
    acknowledged: dict[int, str] = field(default_factory=dict)  # id -> name last answered 2xx
    uncertain: dict[int, set[str]] = field(default_factory=dict)  # renames with no clear answer
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        limits = httpx2.Limits(max_connections=self.clients)
        async with httpx2.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=30, limits=limits
        ) as client:
            await asyncio.gather(*(self._client(client, n) for n in range(self.clients)))

    def stop(self) -> None:
        self.stopping.set()

    async def _client(self, client: httpx2.AsyncClient, n: int) -> None:
        rng = random.Random(n)  # noqa: S311 (a load pattern, not a secret)
        mine: list[int] = []
        next_at = time.monotonic()
        i = 0
        while not self.stopping.is_set():
            next_at += 1 / self.rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            i += 1
            roll = rng.random()
            if roll < 0.15 or not self.acknowledged:
                name = f"client {n} user {i}"
                response = await self._send(client.post("/users", json={"name": name}))
                if response is not None and response.status_code == 201:
                    user_id = response.json()["id"]
                    self.acknowledged[user_id] = name
                    mine.append(user_id)
            elif roll < 0.20 and mine:
                user_id, name = rng.choice(mine), f"client {n} rename {i}"
                response = await self._send(client.patch(f"/users/{user_id}", json={"name": name}))
                if response is not None and response.status_code == 200:
                    self.acknowledged[user_id] = name
                    self.uncertain.pop(user_id, None)
                elif response is None or response.status_code >= 500:
                    self.uncertain.setdefault(user_id, set()).add(name)  # may have happened
            elif roll < 0.30:
                after = rng.choice(list(self.acknowledged))
                await self._send(client.get("/users", params={"limit": 50, "after": after}))
            else:
                await self._send(client.get(f"/users/{rng.choice(list(self.acknowledged))}"))

    async def _send(self, request: Awaitable[httpx2.Response]) -> httpx2.Response | None:
        start = time.monotonic()
        try:
            response: httpx2.Response | None = await request
        except httpx2.TransportError:
            response = None
        status = TRANSPORT_ERROR if response is None else response.status_code
        self.samples.append(Sample(start, time.monotonic() - start, status))
        return response

    async def lost_writes(self, dsn: str) -> int:
        """Acknowledged users missing, or holding a name no acknowledged write left there."""
        connection = await asyncpg.connect(dsn)
        try:
            rows = await connection.fetch("SELECT id, nickname FROM users")
        finally:
            await connection.close()
        stored = {row["id"]: row["nickname"] for row in rows}
        return sum(
            1
            for user_id, name in self.acknowledged.items()
            if stored.get(user_id) not in {name, *self.uncertain.get(user_id, ())}
        )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
