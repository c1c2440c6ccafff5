"""The `user-service` command."""

import argparse
import logging.config
import shutil
import sys
from collections.abc import Sequence

import asyncpg

from . import database, logs, migrations, server
from .config import Settings, get_settings_or_exit

# Failures an operator fixes in configuration or infrastructure: one line, no traceback.
_CONNECTION_FAILURES = (
    *database.UNAVAILABLE,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    database.NoDatabaseError,
)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    metrics = server.metrics_directory()  # before anything imports prometheus_client
    try:
        database.resolve_url(settings)  # the embedded server, if any, starts once, here
        if args.migrate:
            migrations.upgrade()
        server.run(
            settings,
            host=args.host or settings.app_host,
            port=settings.app_port if args.port is None else args.port,
            workers=args.workers or settings.app_workers,
        )
    finally:
        shutil.rmtree(metrics, ignore_errors=True)


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
        "--workers", type=int, help="worker processes (default: APP_WORKERS, or one per CPU)"
    )
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
    settings = get_settings_or_exit()
    logging.config.dictConfig(logs.config(settings.log_format))
    try:
        args.run(args, settings)
    except _CONNECTION_FAILURES as exc:
        sys.exit(f"user-service: cannot use the database: {exc}")
