"""The audit log: security events (sign-ins, password and email changes, sessions, tokens,
admin changes to users), read through `GET /audit`."""

from fastapi import FastAPI

from ..auth.guard import require
from ..main import mount
from . import models  # noqa: F401 (registers the table on the shared metadata)

# Declared with the module, not its routes: the CLI knows the scope without mounting them.
READ = require("audit:read", "Read the audit log of security events.")


def init_app(app: FastAPI) -> None:
    # Imported here: the accounts service records through this package's repository, and
    # the routes import the accounts service (importing either first then works).
    from .router import router

    mount(app, router)
