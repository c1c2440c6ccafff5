"""The users API: a feature module, mounted through the `user_service.modules` entry point."""

from fastapi import FastAPI

from .. import hotpath
from ..main import mount
from . import models  # noqa: F401 (registers the users table on the shared metadata)
from .router import router


def init_app(app: FastAPI) -> None:
    mount(app, router)
    hotpath.serve(app, router.routes)  # the busiest routes of all
