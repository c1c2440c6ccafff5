"""The audit log: security events (sign-ins, password and email changes, sessions, tokens,
admin changes to users), read through `GET /audit`."""

from fastapi import FastAPI

from ..main import mount
from . import models  # noqa: F401 (registers the table on the shared metadata)
from .router import router


def init_app(app: FastAPI) -> None:
    mount(app, router)
