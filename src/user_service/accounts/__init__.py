"""Accounts: people sign up, verify their email, sign in, keep sessions and reset their
password (a feature module, mounted through the `user_service.modules` entry point). Its
service is the one way into an account and the one way to change one."""

from fastapi import FastAPI, Request

from ..auth.guard import Principal
from ..main import mount
from . import (
    mfa_router,
    models,  # noqa: F401 (registers the tables on the shared metadata)
)
from .router import auth, me, wellknown
from .service import of
from .service import serve as lifespan

__all__ = ["init_app", "lifespan"]


async def _person(request: Request, token: str) -> Principal | None:
    return await of(request).principal(token)


def init_app(app: FastAPI) -> None:
    mount(app, auth)
    mount(app, me)
    mount(app, mfa_router.auth)
    mount(app, mfa_router.me)
    mount(app, wellknown)
    app.state.auth.people = _person
