"""Accounts: people sign up, verify their email, sign in, keep sessions and reset their
password (a feature module, mounted through the `user_service.modules` entry point)."""

from fastapi import FastAPI

from ..main import mount
from . import models  # noqa: F401 (registers the tables on the shared metadata)
from .router import auth, me, person, wellknown


def init_app(app: FastAPI) -> None:
    mount(app, auth)
    mount(app, me)  # before users' /users/{id}, which "me" would otherwise reach
    mount(app, wellknown)
    app.state.auth.people = person
