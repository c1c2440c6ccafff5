"""The OpenID Provider: other applications sign people in through this service (OAuth 2.1
authorization server, OpenID Connect). A feature module, mounted through the
`user_service.modules` entry point; its flows are the accounts service's (accounts/provider.py),
its pages the account pages' (sign-in, second factor, passkey)."""

from fastapi import FastAPI

from ..auth import guard
from . import models  # noqa: F401 (registers the tables on the shared metadata)

__all__ = ["init_app"]

# Declared with the module, not its routes: the CLI knows the scope without mounting them.
REGISTER_CLIENTS = guard.require(
    "clients:write", "Register applications that sign people in through this service."
)


def init_app(app: FastAPI) -> None:
    # Imported here: the accounts service imports this package's SQL, and the routes
    # import the accounts service.
    from ..main import mount
    from .pages import pages
    from .router import oauth, wellknown

    mount(app, oauth, first=True)
    mount(app, wellknown)
    mount(app, pages)
