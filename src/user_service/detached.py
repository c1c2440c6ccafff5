"""Work a request starts and does not wait for. Its answer goes out at once, and the
connection is free for the client's next request at once: so the answer takes as long,
and the next one starts as soon, whatever the work does (for flows that must not tell a
known email address from an unknown one). The worker finishes the work before it stops."""

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import BackgroundTasks, FastAPI, Request

Work = Coroutine[Any, Any, None]


def after_answer(request: Request, answer: BackgroundTasks) -> Callable[[Work], Awaitable[None]]:
    """What starts work once `answer` has gone out (not before: it would share the time the
    answer takes), without holding the connection while it runs."""

    async def later(work: Work) -> None:
        answer.add_task(_start, request, work)

    return later


async def _start(request: Request, work: Work) -> None:
    # async: Starlette runs a plain function in a thread, where there is no event loop.
    running: set[asyncio.Task[None]] = request.app.state.detached
    task = asyncio.get_running_loop().create_task(work)
    running.add(task)
    task.add_done_callback(running.discard)


async def finish(app: FastAPI, seconds: float) -> None:
    """Wait up to `seconds` for the work still running (at shutdown, before the pool
    closes)."""
    if app.state.detached:
        await asyncio.wait(app.state.detached, timeout=seconds)
