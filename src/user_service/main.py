"""The application factory: plumbing, then every feature module found by entry point."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import entry_points
from types import ModuleType

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from . import database, errors, health, migrations, observability
from .auth import guard
from .config import get_settings
from .http import SECURITY_HEADERS, BodySizeLimit

logger = logging.getLogger(__name__)

MODULES_GROUP = "user_service.modules"

READ_METRICS = guard.require("metrics:read", "Read /metrics (unless METRICS_PUBLIC is set).")


def load_modules(app: FastAPI | None = None) -> list[ModuleType]:
    """Import every feature module registered under `user_service.modules`; mount each
    on `app` through its `init_app(app)` when given."""
    modules = []
    for entry_point in sorted(entry_points(group=MODULES_GROUP), key=lambda ep: ep.name):
        logger.info("Loading module: %s", entry_point.name)
        module = entry_point.load()
        init_app = getattr(module, "init_app", None)
        if app is not None and init_app is not None:
            init_app(app)
        modules.append(module)
    return modules


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with database.connect(get_settings()) as db:
        app.state.db = db
        reporter = asyncio.create_task(observability.report_pool(db.pool))
        try:
            yield
        finally:
            reporter.cancel()


def get_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="user-service",
        summary="Add, read, rename, list and delete users.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url="/redoc" if settings.docs_enabled else None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.schema = migrations.Schema()
    guard.install(app, settings)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.app_max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["Location", "Retry-After", "WWW-Authenticate", "X-Request-ID"],
            max_age=600,
        )
    # Outermost: it sees every request.
    observability.install(
        app, guard=[] if settings.metrics_public else [READ_METRICS], headers=SECURITY_HEADERS
    )
    app.include_router(health.router)
    load_modules(app)
    return app
