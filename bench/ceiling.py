"""The Python ceiling: the yardstick's users API as a raw ASGI app of a few lines, asyncpg on
granian. No framework, no validation, authentication, logging or metrics: what Python
serves on this machine, so the table shows how far the framework's cost still is."""

import json
import os
from typing import Any
from urllib.parse import parse_qs

import asyncpg

SELECT = "SELECT id, nickname FROM users WHERE id = $1"
INSERT = "INSERT INTO users (nickname) VALUES ($1) RETURNING id, nickname"
UPDATE = "UPDATE users SET nickname = $2 WHERE id = $1 RETURNING id, nickname"
PAGE = "SELECT id, nickname FROM users WHERE id > $1 ORDER BY id LIMIT $2"
pool: Any = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global pool  # one per worker, made at its startup
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            pool = await asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=1, max_size=16)
            await send({"type": "lifespan.startup.complete"})
        await pool.close()
        await send({"type": "lifespan.shutdown.complete"})
        return
    method, path = scope["method"], scope["path"]
    status = 200
    answer: Any
    if path == "/users" and method == "GET":
        query = parse_qs(scope["query_string"].decode())
        rows = await pool.fetch(PAGE, int(query["after"][0]), int(query["limit"][0]))
        answer = {"items": [dict(row) for row in rows]}
    elif path == "/users":
        answer, status = dict(await pool.fetchrow(INSERT, (await _json(receive))["name"])), 201
    else:
        user_id = int(path.removeprefix("/users/"))
        if method == "GET":
            row = await pool.fetchrow(SELECT, user_id)
        else:
            row = await pool.fetchrow(UPDATE, user_id, (await _json(receive))["name"])
        answer, status = (dict(row), 200) if row else ({"detail": "Not Found"}, 404)
    body = json.dumps(answer).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(receive: Any) -> Any:
    body, more = b"", True
    while more:
        message = await receive()
        body, more = body + message.get("body", b""), message.get("more_body", False)
    return json.loads(body)
