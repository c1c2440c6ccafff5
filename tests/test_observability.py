"""Request ids, one structured log line per request, Prometheus metrics across workers."""

import asyncio
import json
import os
import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from tests.support import Server


def test_request_id_is_echoed(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


@pytest.mark.parametrize("sent", [None, b"", b"x" * 129, "evil\u2028id".encode(), b"<script>"])
def test_request_id_is_replaced_when_missing_or_unfit(
    client: TestClient, sent: bytes | None
) -> None:
    headers = {} if sent is None else {b"X-Request-ID": sent}
    generated = client.get("/users/1", headers=headers).headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert client.get("/users/1").headers["x-request-id"] != generated


def test_each_request_is_one_json_log_line_with_its_id(start_server: Callable[..., Server]) -> None:
    live = start_server(env={**os.environ, "LOG_FORMAT": "json"})
    with live.client() as client:
        created = client.post("/users", json={"name": "logged"}, headers={"X-Request-ID": "req-1"})
        client.get(f"/users/{created.json()['id']}", headers={"X-Request-ID": "req-2"})
        client.get("/nowhere", headers={"X-Request-ID": "req-3"})
    code, log = live.stop()
    assert code == 0, log

    lines = [json.loads(line) for line in log.splitlines()]  # every line is JSON
    access = {line["request_id"]: line for line in lines if line["logger"] == "user_service.access"}
    assert {key: access["req-1"][key] for key in ("method", "path", "status")} == {
        "method": "POST",
        "path": "/users",
        "status": 201,
    }
    assert access["req-1"]["principal"].startswith("token:test-")  # who did it
    assert access["req-2"]["path"] == "/users/{user_id}"  # the template, not the id
    assert access["req-3"]["path"] == "<unmatched>"
    assert access["req-3"]["status"] == 404
    assert all(line["duration_ms"] > 0 for line in access.values())


def test_in_text_format_each_request_is_one_readable_line_with_its_id(
    start_server: Callable[..., Server],
) -> None:
    live = start_server(env={**os.environ, "LOG_FORMAT": "text"})
    with live.client() as client:
        client.get("/users/999", headers={"X-Request-ID": "req-t"})
    code, log = live.stop()
    assert code == 0, log

    [line] = [line for line in log.splitlines() if line.endswith("[request req-t]")]
    assert re.search(r" INFO user_service.access: GET /users/\{user_id\} 404 [\d.]+ms ", line)


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? (\S+)", line)
        if match and all(f'{k}="{v}"' in (match[1] or "") for k, v in labels.items()):
            total += float(match[2])
    return total


def test_metrics_count_every_request_across_workers(start_server: Callable[..., Server]) -> None:
    live = start_server("--workers", "2", env={**os.environ, "LOG_FORMAT": "json"})
    route = "/users/{user_id}"
    with live.client() as client:
        before = metric(client.get("/metrics").text, "http_requests_total", route=route)

    async def load() -> list[int]:
        async with live.async_client() as client:
            responses = await asyncio.gather(*(client.get("/users/999") for _ in range(100)))
        return [response.status_code for response in responses]

    assert asyncio.run(load()) == [404] * 100
    with live.client() as client:
        text = client.get("/metrics").text
    code, log = live.stop()
    assert code == 0, log

    served_by = {
        entry["pid"] for entry in map(json.loads, log.splitlines()) if entry.get("path") == route
    }
    assert len(served_by) == 2  # both workers answered some: the counts below add them up
    assert metric(text, "http_requests_total", route=route, status="404") - before == 100
    assert metric(text, "http_request_duration_seconds_count", route=route) - before == 100
    assert metric(text, "http_requests_in_flight") == 1  # the scrape itself
    assert metric(text, "db_pool_connections") >= 2  # at least one per worker
