"""The accounts service: every way into an account and every change to one is one call
here, whoever makes it (the API, a page, the CLI, a test). It applies the throttles, the
password rules, the audit, the emails and the work left for after the answer itself; routers
and pages only translate HTTP to a call and back. The flows live by concern:

- signin.py: signing in (the pipeline every way in goes through), refresh, sessions;
- mfa.py: second factors (authenticator codes, recovery codes, passkeys) and the second step;
- provider.py: the OpenID Provider (applications, authorizations, the token endpoint);
- upstream.py: signing in through a company's identity provider;
- webhooks.py: other services' subscriptions to events (webhooks);
- selfservice.py: what a person does for themselves;
- operators.py: what operators do to others, API tokens and scopes;
- reports.py: what operators read;
- steps.py: the steps they are made of; errors.py and emails.py: what they answer and write.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from .. import mail
from ..config import Settings
from ..crypto import Cipher
from ..database import Database
from .keys import Signer
from .mfa import SecondFactors
from .operators import Operators
from .passwords import Hasher
from .provider import Provider
from .reports import Reports
from .selfservice import SelfService
from .upstream import Identities
from .webhooks import Webhooks


class Accounts(SecondFactors, Provider, Identities, Webhooks, SelfService, Operators, Reports):
    """One per worker (or CLI command), built at startup."""

    @classmethod
    def build(
        cls, db: Database, settings: Settings, cipher: Cipher, outbox: mail.Sender
    ) -> "Accounts":
        access_ttl = int(settings.auth_access_ttl.total_seconds())
        return cls(
            db=db,
            settings=settings,
            cipher=cipher,
            hasher=Hasher(settings),
            signer=Signer(db, cipher, settings.link_base, access_ttl),
            outbox=outbox,
        )


@asynccontextmanager
async def serve(app: FastAPI, settings: Settings) -> AsyncIterator[None]:
    """The app's accounts service, for as long as the app runs (its lifespan)."""
    app.state.accounts = Accounts.build(app.state.db, settings, app.state.cipher, app.state.mail)
    yield


def of(request: Request) -> Accounts:
    """The app's accounts service."""
    accounts: Accounts = request.app.state.accounts
    return accounts


async def _service(request: Request) -> Accounts:
    # async: FastAPI would run a plain function in a worker thread.
    return of(request)


Service = Annotated[Accounts, Depends(_service)]
