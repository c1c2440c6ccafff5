"""The `user-service` command."""

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

import asyncpg
import uvicorn

from . import migrations
from .config import Settings, get_settings_or_exit
from .database import UNAVAILABLE

# Failures an operator fixes in configuration or infrastructure: one line, no traceback.
_CONNECTION_FAILURES = (
    *UNAVAILABLE,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    if args.migrate:
        migrations.upgrade()
    # Uvicorn shuts down gracefully on these signals, then raises them again with the handlers
    # it found: ours turn that into exit 0, running atexit (which stops an embedded database).
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _exit_cleanly)
    uvicorn.run(
        "user_service.asgi:app",
        host=args.host or settings.app_host,
        port=settings.app_port if args.port is None else args.port,
        log_config=None,  # the root logger's format, set in main()
        server_header=False,
    )


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    migrations.upgrade(args.to)


def _downgrade(args: argparse.Namespace, settings: Settings) -> None:
    migrations.downgrade(args.revision)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="user-service", description="The user-management HTTP service."
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="apply pending migrations, then serve the API")
    serve.add_argument("--host", help="address to listen on (default: APP_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: APP_PORT)")
    serve.add_argument(
        "--no-migrate",
        dest="migrate",
        action="store_false",
        help="do not apply migrations first (when a separate job applies them)",
    )
    serve.set_defaults(run=_serve)

    migrate = commands.add_parser("migrate", help="upgrade the database schema")
    migrate.add_argument("--to", default="head", metavar="REV", help="target (default: head)")
    migrate.set_defaults(run=_migrate)

    downgrade = commands.add_parser("downgrade", help="downgrade the database schema")
    downgrade.add_argument("revision", metavar="REV", help="target revision, or 'base'")
    downgrade.set_defaults(run=_downgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)  # chatty at INFO
    settings = get_settings_or_exit()
    try:
        args.run(args, settings)
    except _CONNECTION_FAILURES as exc:
        sys.exit(f"user-service: cannot use the database: {exc}")
