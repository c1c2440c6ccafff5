"""A certified OpenID Connect relying party for the provider's tests: panva's openid-client,
run by `rp/driver.mjs`, one JSON line a request (the driver lists the operations)."""

import contextlib
import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

DRIVER = Path(__file__).parent / "rp" / "driver.mjs"


class RelyingPartyError(Exception):
    """A request the relying party refused or failed: `error` has name and message and, when
    the thrown error had them, code, error, error_description, status and cause."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(json.dumps(error))
        self.error = error


class RelyingParty:
    """`with RelyingParty() as rp:` … `rp.call("discover", issuer=…, client_id=…)`."""

    def __init__(self, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._next_id = 0
        # The driver's stderr is ours, so that its crashes show in the test's output.
        self._process = subprocess.Popen(
            ["node", str(DRIVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._stdin = self._process.stdin
        # A thread reads the answers, so that waiting for one can time out: a stuck driver
        # fails the test instead of hanging it.
        self._answers: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(self._process.stdout,))
        self._reader.daemon = True
        self._reader.start()

    def _read(self, stdout: IO[str]) -> None:
        for line in stdout:
            self._answers.put(line)
        self._answers.put("")  # end of output: the driver exited

    def call(self, op: str, **args: Any) -> Any:
        """The result of `op`, or RelyingPartyError with what the driver caught."""
        self._next_id += 1
        request_id = self._next_id
        # A driver that exited (say, without its packages) is reported below, with a hint.
        with contextlib.suppress(BrokenPipeError):
            self._stdin.write(json.dumps({**args, "id": request_id, "op": op}) + "\n")
            self._stdin.flush()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                line = self._answers.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"no answer to {op} within {self.timeout} s") from None
            if not line:
                status = self._process.wait()
                raise RuntimeError(
                    f"the driver exited ({status}) during {op}; are its packages installed "
                    "(npm ci --prefix tests/provider/rp)?"
                )
            answer = json.loads(line)
            if answer["id"] == request_id:  # else a late answer to a request that timed out
                break
        if not answer["ok"]:
            raise RelyingPartyError(answer["error"])
        return answer["result"]

    def close(self) -> None:
        """End the driver: it exits when its input closes."""
        with contextlib.suppress(BrokenPipeError):  # it exited already
            self._stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=5)  # it ends at the end of the driver's output
        assert self._process.stdout is not None
        self._process.stdout.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
