"""A real HTTP receiver of webhooks for the tests: it keeps every request, answers each with
the status it is told to (200 by default), and can hold requests until released."""

import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what it was answered

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self, secret: str) -> dict[str, Any]:
        """The payload, once the spec's own verifier has accepted its signature."""
        payload: dict[str, Any] = Webhook(secret).verify(self.body, self.headers)
        return payload

    @property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        """Over https with `tls` (a server context), else http."""
        self.received: list[Received] = []
        self.answers: list[int] = []  # the next requests' statuses, in turn; then 200
        self.hold = threading.Event()  # while set, requests wait for release()
        self.holding = threading.Event()  # set once a request is being held
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if receiver.hold.is_set():
                    receiver.holding.set()
                    while receiver.hold.is_set():
                        time.sleep(0.02)
                with receiver._changed:
                    status = receiver.answers.pop(0) if receiver.answers else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(headers, body, status))
                    receiver._changed.notify_all()
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "http" if tls is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_port}/hooks"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.hold.clear()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        self.hold.clear()

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = 20
    ) -> list[Received]:
        """Everything received, once `done` says it is enough (failing after `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not done(self.received):
                left = deadline - time.monotonic()
                assert left > 0, f"received {[r.payload['type'] for r in self.received]}"
                self._changed.wait(left)
            return list(self.received)

    def wait_count(self, count: int, timeout: float = 20) -> list[Received]:
        return self.wait_for(lambda received: len(received) >= count, timeout)
