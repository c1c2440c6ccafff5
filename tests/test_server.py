"""The multi-process server: drains on SIGTERM, replaces a dead worker."""

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable

import asyncpg
import httpx2

from tests.support import CLI, Server, bearer, run_sql
from tests.test_observability import metric


def in_flight(server: Server) -> float:
    """Requests in flight, this one aside (the server must serve METRICS_PUBLIC)."""
    return metric(httpx2.get(f"{server.url}/metrics").text, "http_requests_in_flight") - 1


def test_sigterm_lets_in_flight_requests_finish(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    # Public metrics: the held requests may take every pooled connection of a worker, and a
    # token check would wait for one.
    env = {**os.environ, "DB_ACQUIRE_TIMEOUT": "30", "METRICS_PUBLIC": "true"}
    live = start_server("--workers", "2", env=env)

    async def scenario() -> tuple[list[int], float]:
        # Hold the users table so that creates stay in flight while the server is told to stop.
        blocker = await asyncpg.connect(database_url)
        try:
            async with live.async_client(timeout=30) as client:
                async with blocker.transaction():
                    await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                    creates = [
                        asyncio.create_task(client.post("/users", json={"name": f"in flight {n}"}))
                        for n in range(20)
                    ]
                    async with asyncio.timeout(10):
                        while in_flight(live) < 20:  # noqa: ASYNC110 (polling the server)
                            await asyncio.sleep(0.05)
                    live.process.send_signal(signal.SIGTERM)
                    await asyncio.sleep(1)
                    assert live.process.poll() is None, "the server quit with requests in flight"
                released = time.monotonic()  # the lock is gone with the transaction
                responses = await asyncio.gather(*creates)
            return [response.status_code for response in responses], released
        finally:
            await blocker.close()

    statuses, released = asyncio.run(scenario())
    code, log = live.stop()
    stopped = time.monotonic() - released

    assert statuses == [201] * 20
    assert code == 0, log
    assert stopped < 20  # within APP_GRACEFUL_TIMEOUT
    names = {row["nickname"] for row in run_sql(database_url, "SELECT nickname FROM users")}
    assert names == {f"in flight {n}" for n in range(20)}


def test_sigterm_under_load_gives_no_error_and_loses_no_write(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    live = start_server("--workers", "2")
    created: list[int] = []
    statuses: list[int] = []

    refused: list[str] = []

    async def client_loop(client: httpx2.AsyncClient, n: int) -> None:
        for i in range(10_000):
            try:
                response = await client.post("/users", json={"name": f"c{n}-{i}"})
            except httpx2.TransportError as exc:
                refused.append(type(exc).__name__)
                return  # the server has stopped listening: no response was promised
            statuses.append(response.status_code)
            if response.status_code == 201:
                created.append(response.json()["id"])

    async def load() -> None:
        async with live.async_client(timeout=30) as client:
            clients = [asyncio.create_task(client_loop(client, n)) for n in range(16)]
            await asyncio.sleep(1.5)
            live.process.send_signal(signal.SIGTERM)
            await asyncio.gather(*clients)

    asyncio.run(load())
    code, log = live.stop()

    assert code == 0, log
    assert len(statuses) > 100
    assert set(statuses) == {201}  # nothing else: no 5xx, no 503
    stored = {row["id"] for row in run_sql(database_url, "SELECT id FROM users")}
    # Every acknowledged write is there, and nothing else: no request was processed and then
    # cut off from its answer. (A client whose next request met a closed connection did not
    # get it served: that is what `refused` holds, one per client.)
    assert stored == set(created)
    print(
        f"\nSIGTERM under load: {len(statuses)} answers, all 201, {len(created)} writes "
        f"acknowledged, {len(stored)} stored; the 16 clients then met {sorted(refused)}"
    )


def kill_a_worker(live: Server) -> None:
    """SIGKILL one of the two workers; return once another has taken its place."""
    victim = live.workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = live.workers()
        if len(workers) == 2 and victim not in workers:
            break
        time.sleep(0.1)
    assert len(live.workers()) == 2
    assert victim not in live.workers()


def test_a_killed_worker_is_replaced(start_server: Callable[..., Server]) -> None:
    live = start_server("--workers", "2")
    kill_a_worker(live)
    for _ in range(20):
        assert httpx2.get(f"{live.url}/readyz").status_code == 200
    code, log = live.stop()
    assert code == 0, log
    assert "Unexpected exit from worker-" in log
    assert "Respawning worker-" in log


def test_a_killed_workers_requests_in_flight_leave_the_metrics(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    env = {**os.environ, "DB_ACQUIRE_TIMEOUT": "30", "METRICS_PUBLIC": "true"}
    live = start_server("--workers", "2", env=env)

    async def scenario() -> list[int | BaseException]:
        blocker = await asyncpg.connect(database_url)
        try:
            # Each create on a connection of its own, spread by the kernel over both workers.
            token = bearer(live.token())
            clients = [
                httpx2.AsyncClient(base_url=live.url, headers=token, timeout=30) for _ in range(20)
            ]
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                creates = [
                    asyncio.create_task(c.post("/users", json={"name": f"held {n}"}))
                    for n, c in enumerate(clients)
                ]
                async with asyncio.timeout(10):
                    while in_flight(live) < 20:  # noqa: ASYNC110 (polling the server)
                        await asyncio.sleep(0.05)
                await asyncio.to_thread(kill_a_worker, live)
            answers = await asyncio.gather(*creates, return_exceptions=True)
            for c in clients:
                await c.aclose()
            return [a if isinstance(a, BaseException) else a.status_code for a in answers]
        finally:
            await blocker.close()

    answers = asyncio.run(scenario())
    # The survivor's creates were answered; the killed worker's connections were cut.
    assert 0 < answers.count(201) < 20
    assert all(a == 201 or isinstance(a, httpx2.TransportError) for a in answers), answers
    # The dead worker's last count of requests in flight is not added to the live ones'.
    assert in_flight(live) == 0
    code, log = live.stop()
    assert code == 0, log


def test_a_port_in_use_is_refused_in_one_line(start_server: Callable[..., Server]) -> None:
    live = start_server()
    # A second server on the same port would otherwise share it: each worker binds with
    # SO_REUSEPORT, and the kernel would spread connections over both.
    second = subprocess.run(
        [CLI, "serve", "--port", str(live.port)],
        env=live.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 1
    assert second.stderr.strip().splitlines()[-1] == (
        f"user-service: cannot listen on 127.0.0.1 port {live.port}: Address already in use"
    )
    assert httpx2.get(f"{live.url}/readyz").status_code == 200
    code, log = live.stop()
    assert code == 0, log
