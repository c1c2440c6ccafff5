"""The yardstick: the naive FastAPI + asyncpg users API the benchmark compares the service
with. One pool.fetchrow per request; no authentication, logging, metrics or error contract."""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with asyncpg.create_pool(os.environ["BENCH_DSN"], min_size=1, max_size=16) as pool:
        app.state.pool = pool
        yield


app = FastAPI(lifespan=lifespan)


class UserIn(BaseModel):
    name: str


@app.get("/users/{user_id}")
async def get_user(user_id: int) -> dict[str, object]:
    row = await app.state.pool.fetchrow("SELECT id, nickname FROM users WHERE id = $1", user_id)
    if row is None:
        raise HTTPException(404)
    return dict(row)


@app.post("/users", status_code=201)
async def create_user(user: UserIn) -> dict[str, object]:
    query = "INSERT INTO users (nickname) VALUES ($1) RETURNING id, nickname"
    return dict(await app.state.pool.fetchrow(query, user.name))


@app.patch("/users/{user_id}")
async def rename_user(user_id: int, user: UserIn) -> dict[str, object]:
    query = "UPDATE users SET nickname = $2 WHERE id = $1 RETURNING id, nickname"
    row = await app.state.pool.fetchrow(query, user_id, user.name)
    if row is None:
        raise HTTPException(404)
    return dict(row)


@app.get("/users")
async def list_users(limit: int = 50, after: int = 0) -> dict[str, object]:
    query = "SELECT id, nickname FROM users WHERE id > $1 ORDER BY id LIMIT $2"
    rows = await app.state.pool.fetch(query, after, limit)
    return {"items": [dict(row) for row in rows]}
