"""At least once, through a killed worker and a restarted database: the served app (gunicorn)
on a PostgreSQL of the test's own."""

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest

from tests.support import Postgres, Server, bearer, run_sql
from tests.test_observability import metric
from tests.webhooks.conftest import SCOPES
from tests.webhooks.receiver import Receiver

USERS = 10


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    with Postgres(tmp_path / "server") as server:
        yield server


def test_every_event_arrives_through_a_sigkill_and_a_database_restart(
    postgres: Postgres, receiver: Receiver, start_server: Callable[..., Server]
) -> None:
    env = postgres.environment(
        DB_DATABASE="hooks",
        WEBHOOK_DELIVERY="true",
        WEBHOOK_RETRY_DELAYS="0s,1s",
        METRICS_PUBLIC="true",
        LOG_FORMAT="json",
    )
    live = start_server("--workers", "1", env=env)
    with httpx2.Client(base_url=live.url, headers=bearer(live.token(*SCOPES))) as client:
        created = client.post("/webhooks", json={"url": receiver.url, "events": ["user.created"]})
        secret = created.json()["secret"]
        receiver.hold.set()
        users = {client.post("/users", json={"name": f"u{n}"}).json()["id"] for n in range(USERS)}
    assert receiver.holding.wait(10), "no delivery began"

    # Killed in mid-delivery: its row lock goes with its connection, and the new worker
    # takes the event again (and is held too, in mid-delivery, while the database restarts).
    victim = live.workers()[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not (live.workers() and live.workers()[0] != victim and _ready(live)):
        assert time.monotonic() < deadline, "no new worker"
        time.sleep(0.1)
    postgres.stop()
    receiver.release()
    postgres.start()

    def all_taken() -> bool:
        states = run_sql(postgres.dsn("hooks_test"), "SELECT state FROM webhook_deliveries")
        return len(states) == USERS and {row["state"] for row in states} == {"delivered"}

    deadline = time.monotonic() + 60
    while not all_taken():
        assert time.monotonic() < deadline, run_sql(
            postgres.dsn("hooks_test"), "SELECT * FROM webhook_deliveries"
        )
        time.sleep(0.2)

    received = receiver.received
    payloads = {r.id: r.verified(secret) for r in received}
    assert len(payloads) == USERS  # one id per event, however often it came
    assert {p["data"]["id"] for p in payloads.values()} == users
    for r in received:  # a repeat is the same event: the same id, the same body
        assert r.payload == payloads[r.id]
    assert len(received) > USERS  # the interrupted attempts came again

    # The queue's gauges are read after each pass of the deliverer: empty, soon.
    deadline = time.monotonic() + 10
    while metric(text := httpx2.get(f"{live.url}/metrics").text, "webhook_queue_depth") > 0:
        assert time.monotonic() < deadline, text
        time.sleep(0.2)
    code, log = live.stop()
    assert code == 0, log
    assert metric(text, "webhook_deliveries_total", outcome="delivered") >= 1
    assert metric(text, "webhook_queue_oldest_seconds") == 0
    assert secret not in log
    assert secret.removeprefix("whsec_") not in log
    print(
        f"\n{USERS} events through a SIGKILL and a PostgreSQL restart: {len(received)} "
        f"requests received, {len(payloads)} distinct ids, all delivered"
    )


def _ready(live: Server) -> bool:
    try:
        return httpx2.get(f"{live.url}/readyz", timeout=2).status_code == 200
    except httpx2.TransportError:
        return False


def test_two_workers_share_the_work_and_send_each_attempt_once(
    receiver: Receiver, start_server: Callable[..., Server]
) -> None:
    env = {**os.environ, "WEBHOOK_DELIVERY": "true"}
    live = start_server("--workers", "2", env=env)
    with httpx2.Client(base_url=live.url, headers=bearer(live.token(*SCOPES))) as client:
        client.post("/webhooks", json={"url": receiver.url, "events": ["user.created"]})
        for n in range(3 * USERS):
            client.post("/users", json={"name": f"u{n}"})
    received = receiver.wait_count(3 * USERS, timeout=30)
    time.sleep(2.5)  # over two polls of each worker's loops: any second send would be here
    ids = [r.id for r in receiver.received]
    code, log = live.stop()
    assert code == 0, log
    assert len(ids) == len(set(ids)) == 3 * USERS, len(received)
