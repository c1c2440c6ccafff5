"""Pages in the browser: the operators' console under /console and everyone's account pages
under /account (a feature module, mounted through the `user_service.modules` entry point)."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from ..main import mount
from . import account, clients, mfa, operators, webhooks


def init_app(app: FastAPI) -> None:
    mount(app, account.router)
    mount(app, mfa.router)
    mount(app, operators.router)
    mount(app, clients.router)
    mount(app, webhooks.router)
    # Vendored files (htmx, the stylesheet): nothing is fetched from elsewhere.
    app.mount("/static", StaticFiles(directory=Path(__file__).with_name("static")), "static")
