"""A real SMTP server for tests: aiosmtpd on 127.0.0.1, keeping every message it receives."""

import asyncio
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import TracebackType
from typing import Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support import free_port


class SmtpServer:
    """`with SmtpServer() as smtp:` … `smtp.wait_for(1)`. Stopped and started again, it
    listens on the same port (an outage and a recovery)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._messages: list[EmailMessage] = []
        # Messages arrive on the server's own thread and event loop.
        self._received = threading.Condition()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far, parsed."""
        with self._received:
            return list(self._messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._received:
            self._messages.clear()

    def env(self) -> dict[str, str]:
        """The service's settings that send email here."""
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.port),
            "SMTP_SECURITY": "none",
            "MAIL_SENDER": "true",
        }

    def start(self) -> None:
        self._controller = _Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def wait_for(self, count: int, timeout: float = 5) -> list[EmailMessage]:
        """The messages once at least `count` have arrived; AssertionError after `timeout` s."""
        with self._received:
            if not self._received.wait_for(lambda: len(self._messages) >= count, timeout):
                raise AssertionError(f"expected {count} emails, received {len(self._messages)}")
            return list(self._messages)

    def _receive(self, data: bytes) -> None:
        message = message_from_bytes(data, _class=EmailMessage, policy=policy.default)
        with self._received:
            self._messages.append(message)
            self._received.notify_all()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


class _Controller(Controller):
    """aiosmtpd's, closing the connections still open when it stops: one left to the garbage
    collector warns in whichever test happens to run then."""

    def __init__(self, handler: "_Handler", hostname: str, port: int) -> None:
        super().__init__(handler, hostname=hostname, port=port)
        self.sessions: list[SMTP] = []

    def factory(self) -> SMTP:
        session: SMTP = super().factory()  # type: ignore[no-untyped-call]
        self.sessions.append(session)
        return session

    def stop(self, no_assert: bool = False) -> None:
        async def close_sessions() -> None:
            for session in self.sessions:
                if session.transport is not None:
                    session.transport.close()

        asyncio.run_coroutine_threadsafe(close_sessions(), self.loop).result(timeout=5)
        super().stop(no_assert)


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.server._receive(envelope.original_content or b"")
        return "250 Message accepted for delivery"
