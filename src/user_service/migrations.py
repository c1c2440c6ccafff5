"""Run the Alembic migrations in `migrations/` from code (the CLI) as `alembic` does."""

from pathlib import Path

from alembic import command
from alembic.config import Config

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
