"""Helpers for tests: SQL on the side, and the service as a child process."""

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx2

CLI = str(Path(sys.executable).with_name("user-service"))


def run_sql(dsn: str, query: str) -> list[asyncpg.Record]:
    async def fetch() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(dsn)
        try:
            return await connection.fetch(query)
        finally:
            await connection.close()

    return asyncio.run(fetch())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """`user-service serve` in a child process, as users run it."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        """Serve with `env` as the whole environment (default: this process's)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port)],
            env=dict(os.environ) if env is None else env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.stop()[1]}")
            try:
                httpx2.get(f"{self.url}/openapi.json", timeout=1)
                return
            except httpx2.TransportError:
                time.sleep(0.1)
        self.process.kill()
        raise TimeoutError("server did not come up")

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and everything the server logged."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=30)
        return self.process.returncode, output
