"""Run the Alembic migrations in `migrations/` from code (the CLI) as `alembic` does."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

_PACKAGE = Path(__file__).parent


def _script_location() -> Path:
    # Installed from a wheel the migrations ship inside the package; in a checkout they sit
    # at the project root, beside alembic.ini.
    for candidate in (_PACKAGE / "migrations", _PACKAGE.parent.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("the migrations folder is missing from this installation")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_script_location()))
    return config


def upgrade(revision: str = "head") -> None:
    command.upgrade(alembic_config(), revision)


def downgrade(revision: str) -> None:
    command.downgrade(alembic_config(), revision)


class Schema:
    """The migrations this code ships, to judge a database's schema by."""

    def __init__(self) -> None:
        script = ScriptDirectory.from_config(alembic_config())
        self.heads = set(script.get_heads())
        self.known = {revision.revision for revision in script.walk_revisions()}

    def problem(self, current: set[str]) -> str | None:
        """Why a database at revisions `current` cannot serve this code; None if it can.

        A revision this code does not know belongs to a newer release, migrated ahead of a
        rolling update: the schema is ahead of us, which migrations keep compatible.
        """
        if current == self.heads or current - self.known:
            return None
        return f"schema at {sorted(current) or 'nothing'}, expected {sorted(self.heads)}"


class MissingExtensionError(RuntimeError):
    """The schema needs a PostgreSQL extension the migrating role may not create."""


def create_extension(name: str) -> None:
    """In a migration: create the extension `name` unless the database has it already."""
    from alembic import op
    from sqlalchemy.exc import DBAPIError

    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.exec_driver_sql(f"CREATE EXTENSION IF NOT EXISTS {name}")
    except DBAPIError as exc:
        raise MissingExtensionError(
            f"the schema needs the PostgreSQL extension {name}, which this role may not "
            f"create ({exc.orig}); have a superuser or the database owner run "
            f'"CREATE EXTENSION {name};" in database {bind.engine.url.database}, then migrate '
            "again"
        ) from None
