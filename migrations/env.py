"""Alembic environment: the app's settings, retries and modules; one migrator at a time."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from user_service import database
from user_service.config import get_settings_or_exit
from user_service.main import load_modules

# An arbitrary key for pg_advisory_xact_lock: instances starting at once migrate in turn.
MIGRATION_LOCK_KEY = 0x75736572  # "user"

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

load_modules()  # every feature module's tables join the metadata, for autogenerate
target_metadata = database.metadata
settings = get_settings_or_exit()


def run_migrations_offline() -> None:
    context.configure(
        url="postgresql://",  # SQL is only printed: the dialect is all it needs
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_migrations_online() -> None:
    url = database.resolve_url(settings)
    await database.ensure_database(url, settings)
    engine = create_async_engine(
        url.set(drivername="postgresql+asyncpg"),
        poolclass=NullPool,
        connect_args=database.connect_options(settings),
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
