"""Passwords: argon2id hashes computed off the event loop, a bounded number at a time, and
the rules a new password must pass (OWASP ASVS 5: length, not common, not personal)."""

import asyncio
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ..config import Settings
from ..errors import AppError

MAX_LENGTH = 256
T = TypeVar("T")


class BusyError(AppError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    type = "/problems/busy"

    def __init__(self) -> None:
        super().__init__("Too many sign-ins at once; try again shortly.", {"Retry-After": "1"})


class Hasher:
    """argon2id in worker threads, at most AUTH_HASH_CONCURRENCY at once per worker, and at
    most AUTH_HASH_QUEUE waiting: each hash takes ~19 MiB, so a flood of sign-ins gets 503s
    instead of using up memory."""

    def __init__(self, settings: Settings) -> None:
        self._argon2 = PasswordHasher(
            time_cost=settings.auth_argon2_time_cost,
            memory_cost=settings.auth_argon2_memory_kib,
            parallelism=1,
        )
        self._running = asyncio.Semaphore(settings.auth_hash_concurrency)
        self._queue = settings.auth_hash_queue
        self._waiting = 0
        self._dummy: str | None = None

    async def _run(self, work: Callable[[], T]) -> T:
        if self._running.locked() and self._waiting >= self._queue:
            raise BusyError
        self._waiting += 1
        try:
            await self._running.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(work)
        finally:
            self._running.release()

    async def hash(self, password: str) -> str:
        return await self._run(lambda: self._argon2.hash(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether `password` matches; with no hash (no such account) a dummy is checked, so
        that the answer takes as long either way."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("dummy password for absent accounts")
            password_hash = self._dummy

        def check() -> bool:
            try:
                return self._argon2.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await self._run(check) and password_hash is not self._dummy

    def outdated(self, password_hash: str) -> bool:
        """The hash was made with other parameters than today's: rehash on sign-in."""
        return self._argon2.check_needs_rehash(password_hash)


@cache
def _common() -> frozenset[str]:
    path = Path(__file__).with_name("common-passwords.txt")
    return frozenset(path.read_text().split())


def problem(password: str, *, email: str, name: str, min_length: int) -> str | None:
    """Why `password` may not be used, or None. Any character is allowed, none required."""
    if len(password) < min_length:
        return f"must be at least {min_length} characters long"
    lowered = password.casefold()
    if lowered in _common():
        return "is one of the 10,000 most common passwords; choose another"
    local_part = email.rpartition("@")[0].casefold()
    if len(local_part) >= 3 and local_part in lowered:
        return "must not contain the email address"
    if len(name.strip()) >= 3 and name.strip().casefold() in lowered:
        return "must not contain your name"
    return None
