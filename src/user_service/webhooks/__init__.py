"""Webhooks: other services learn at once when a user is created, changed or deleted; events
signed as Standard Webhooks asks, delivered at least once from a transactional outbox. A
feature module, mounted through the `user_service.modules` entry point; its flows are the
accounts service's (accounts/webhooks.py)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..auth import guard
from ..config import Settings
from . import models  # noqa: F401 (registers the tables on the shared metadata)

__all__ = ["init_app", "lifespan"]

# Declared with the module, not its routes: the CLI knows the scope without mounting them.
MANAGE = guard.require("webhooks:write", "Subscribe other services to events (webhooks).")


def init_app(app: FastAPI) -> None:
    # Imported here: the audit log and the users API import this package's SQL, and the
    # routes import the accounts service.
    from ..main import mount
    from .router import router

    mount(app, router)


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """Deliver due events for as long as the app runs (WEBHOOK_DELIVERY)."""
    from .delivery import Deliverer

    if not settings.webhook_delivery:
        yield
        return
    deliverer = Deliverer(app.state.db, settings, app.state.cipher)
    async with deliverer.running():
        yield
