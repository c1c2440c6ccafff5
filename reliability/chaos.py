"""Faults under steady load: what clients saw, how long until all was well, what was lost.

`make chaos` (about two minutes). Each scenario gets its own PostgreSQL, the service with
two workers and a steady mixed load; the fault strikes after a few seconds of it."""

import asyncio
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

from reliability.load import TRANSPORT_ERROR, Load
from tests.support import CLI, PgBouncer, Postgres, Server, bearer

DATABASE = "user_service"
BEFORE, AFTER = 3.0, 8.0  # seconds of load before the fault, and after it is over


@dataclass
class Result:
    scenario: str
    requests: int
    errors: dict[str, int]  # status (0: no answer) -> count
    max_error_ms: float
    recovery_ms: float  # from the end of the fault to the end of the last failed request
    observed: str  # evidence that the fault happened
    acknowledged_writes: int
    lost_writes: int


async def run_scenario(
    name: str,
    fault: Callable[[], Awaitable[str]],
    server: Server,
    dsn: str,
) -> Result:
    token = await asyncio.to_thread(server.token)
    load = Load(server.url, bearer(token))
    running = asyncio.create_task(load.run())
    await asyncio.sleep(BEFORE)
    observed = await fault()
    over = time.monotonic()
    await asyncio.sleep(AFTER)
    load.stop()
    await running
    failed = [s for s in load.samples if not 200 <= s.status < 300 and s.status != 404]
    return Result(
        scenario=name,
        requests=len(load.samples),
        errors={
            ("no answer" if status == TRANSPORT_ERROR else str(status)): count
            for status, count in sorted(Counter(s.status for s in failed).items())
        },
        max_error_ms=round(max((s.latency for s in failed), default=0) * 1000),
        recovery_ms=round(max([0.0, *(s.start + s.latency - over for s in failed)]) * 1000),
        observed=observed,
        acknowledged_writes=len(load.acknowledged),
        lost_writes=await load.lost_writes(dsn),
    )


# A server of one's own needs its secret key (the embedded database alone makes one), the
# same for the service and the CLI commands run beside it.
SECRET_KEY = os.environ.get("AUTH_SECRET_KEY") or secrets.token_urlsafe(32)


def environment(postgres: Postgres, **settings: str) -> dict[str, str]:
    return postgres.environment(
        DB_DATABASE=DATABASE, LOG_FORMAT="json", AUTH_SECRET_KEY=SECRET_KEY, **settings
    )


@contextmanager
def served(directory: Path) -> Iterator[tuple[Postgres, Server]]:
    """A PostgreSQL of its own and the service with two workers on it, stopped after."""
    with (
        Postgres(directory) as postgres,
        Server("--workers", "2", env=environment(postgres)) as server,
    ):
        yield postgres, server


async def postgres_restart(directory: Path) -> Result:
    with served(directory) as (postgres, server):

        async def fault() -> str:
            down = time.monotonic()
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(3)
            await asyncio.to_thread(postgres.start)
            return f"down {time.monotonic() - down:.1f} s"

        name = "PostgreSQL stopped for 3 s, then started"
        return await run_scenario(name, fault, server, postgres.dsn(DATABASE))


async def terminate_backends(directory: Path) -> Result:
    with served(directory) as (postgres, server):

        async def fault() -> str:
            connection = await asyncpg.connect(postgres.dsn())
            try:
                terminated = await connection.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = $1 AND pid <> pg_backend_pid()",
                    DATABASE,
                )
            finally:
                await connection.close()
            return f"{terminated} connections terminated"

        name = "pg_terminate_backend on every service connection"
        return await run_scenario(name, fault, server, postgres.dsn(DATABASE))


async def worker_killed(directory: Path) -> Result:
    with served(directory) as (postgres, server):

        async def fault() -> str:
            killed = server.workers()[0]
            os.kill(killed, signal.SIGKILL)
            start = time.monotonic()
            while killed in server.workers() or len(server.workers()) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            # granian has forked a replacement; it serves once its app has loaded.
            return f"replacement forked after {(time.monotonic() - start) * 1000:.0f} ms"

        name = "kill -9 of one of two workers"
        return await run_scenario(name, fault, server, postgres.dsn(DATABASE))


async def pgbouncer_restart(directory: Path) -> Result:
    with ExitStack() as started:
        postgres = started.enter_context(Postgres(directory / "postgres"))
        migrated = await asyncio.create_subprocess_exec(CLI, "migrate", env=environment(postgres))
        if await migrated.wait() != 0:
            raise RuntimeError("user-service migrate failed")
        bouncer = started.enter_context(PgBouncer(postgres, directory / "pgbouncer", DATABASE))
        env = environment(postgres, DB_DSN=bouncer.dsn(DATABASE), DB_PGBOUNCER="true")
        server = started.enter_context(Server("--workers", "2", "--no-migrate", env=env))

        async def fault() -> str:
            down = time.monotonic()
            await asyncio.to_thread(bouncer.stop)
            await asyncio.to_thread(bouncer.start)
            return f"down {(time.monotonic() - down) * 1000:.0f} ms"

        return await run_scenario(
            "PgBouncer restarted (connections dropped)", fault, server, postgres.dsn(DATABASE)
        )


SCENARIOS = [postgres_restart, terminate_backends, pgbouncer_restart, worker_killed]


def table(results: list[Result]) -> str:
    lines = [
        "| Fault | Observed | Requests | Failed (status: count) | Slowest failure | "
        "Last failure after the fault | Acknowledged writes | Lost |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        errors = ", ".join(f"{status}: {count}" for status, count in r.errors.items()) or "none"
        lines.append(
            f"| {r.scenario} | {r.observed} | {r.requests:,} | {errors} | {r.max_error_ms} ms | "
            f"{r.recovery_ms} ms | {r.acknowledged_writes:,} | {r.lost_writes} |"
        )
    return "\n".join(lines)


def main() -> int:
    results = []
    with tempfile.TemporaryDirectory(prefix="user-service-chaos-") as scratch:
        for n, scenario in enumerate(SCENARIOS):
            print(f"running: {scenario.__name__}", file=sys.stderr, flush=True)
            results.append(asyncio.run(scenario(Path(scratch) / str(n))))
    print(table(results))
    out = Path(".data/reliability/chaos.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([asdict(r) for r in results], indent=2))
    print(f"\n(also in {out})", file=sys.stderr)
    bad = [r for r in results if r.lost_writes or "500" in r.errors]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
