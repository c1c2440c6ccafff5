"""Probes for orchestrators: is the process alive, can it serve."""

from typing import Any

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .database import UNAVAILABLE, Db

router = APIRouter(tags=["probes"])

NOT_READY: dict[int | str, dict[str, Any]] = {503: {"description": "Not ready"}}


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (the database is not consulted)."""
    return {"status": "ok"}


@router.get("/readyz", responses=NOT_READY)
async def readyz(request: Request, db: Db) -> JSONResponse:
    """The database answers and its schema is at the migrations' head (or ahead)."""
    try:
        rows = await db.fetch("SELECT version_num FROM alembic_version")
    except UNAVAILABLE:
        return _not_ready("database unavailable")
    except asyncpg.UndefinedTableError:
        rows = []
    problem = request.app.state.schema.problem({row["version_num"] for row in rows})
    if problem:
        return _not_ready(problem)
    return JSONResponse({"status": "ready"})


def _not_ready(reason: str) -> JSONResponse:
    return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
