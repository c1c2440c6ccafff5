"""Who acts, from where, in which request: what every flow of the accounts service is
given, and what the audit log records of it. A flow never sees the request itself, so a
page, the API, the CLI and a test call it alike."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import BackgroundTasks, Request

from . import detached, logs
from .http import client_address

Work = detached.Work
# Runs work that must not delay the answer (nor show in its timing).
Later = Callable[[Work], Awaitable[None]]


async def at_once(work: Work) -> None:
    """Outside a request (the CLI, a test) there is no answer to wait for."""
    await work


@dataclass(frozen=True, slots=True)
class Context:
    actor: str  # user:<id>, token:<name>, jwt:<subject>, cli or anonymous
    # What the actor may do; None for the CLI, run by whoever runs the service.
    scopes: frozenset[str] | None = frozenset()
    user_id: int | None = None  # a person's, acting
    client_address: str | None = None
    request_id: str | None = None
    user_agent: str | None = None
    later: Later = at_once


CLI = Context("cli", scopes=None)


def from_request(
    request: Request, actor: str | None = None, answer: BackgroundTasks | None = None
) -> Context:
    """The request's context; the actor is the authenticated caller unless named. With
    `answer` (the route's BackgroundTasks), detached work starts once the answer is out."""
    principal = getattr(request.state, "principal", None) if actor is None else None
    return Context(
        actor=principal.name if principal else actor or "anonymous",
        scopes=principal.scopes if principal else frozenset(),
        user_id=principal.user_id if principal else None,
        client_address=client_address(request),
        request_id=logs.request_id.get(),
        user_agent=request.headers.get("user-agent", "")[:500] or None,
        later=at_once if answer is None else detached.after_answer(request, answer),
    )
