"""Sign in through a company's identity provider ("Sign in with Acme SSO"): this service as
an OpenID Connect relying party of each provider SIGNIN_PROVIDERS names (a feature module,
mounted through the `user_service.modules` entry point; its flows are the accounts
service's, accounts/upstream.py)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ..config import Settings
from . import models  # noqa: F401 (registers the table on the shared metadata)
from .client import Upstream
from .config import configured

__all__ = ["init_app", "lifespan"]


def callback_url(settings: Settings, name: str) -> str:
    """The redirect URI to register at provider `name`."""
    return f"{settings.link_base}/auth/providers/{name}/callback"


@asynccontextmanager
async def lifespan(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The configured providers, by name; nothing is fetched from them until needed."""
    app.state.upstream = {
        provider.name: Upstream(
            provider,
            callback_url(settings, provider.name),
            leeway=settings.auth_leeway,
            refetch=settings.auth_jwks_refetch_interval,
        )
        for provider in configured()
    }
    yield


def init_app(app: FastAPI) -> None:
    # Imported here: the accounts service imports this package's SQL, and the routes import
    # the accounts service.
    from ..main import mount
    from .pages import api, pages

    mount(app, api)
    mount(app, pages)
