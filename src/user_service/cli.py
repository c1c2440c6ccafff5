"""The `user-service` command."""

import argparse
import asyncio
import json
import logging.config
import os
import shutil
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import asyncpg

from . import crypto, database, logs, mail, migrations, server
from .auth import tokens
from .config import Settings, get_settings, get_settings_or_exit, parse_duration

if TYPE_CHECKING:
    from .accounts.service import Accounts
    from .context import Context

logger = logging.getLogger("user_service")
ADMIN_TOKEN_FILE = "admin.token"  # noqa: S105 (a file name)
ADMIN_TOKEN_NAME = "admin"  # noqa: S105 (the token's label)
T = TypeVar("T")

# Failures an operator fixes in configuration or infrastructure: one line, no traceback.
_CONNECTION_FAILURES = (
    *database.UNAVAILABLE,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    database.NoDatabaseError,
    migrations.MissingExtensionError,
)


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    from .upstream.config import SettingError, configured

    try:
        providers = configured()  # a malformed setting stops here, in one line
    except SettingError as exc:
        sys.exit(f"user-service: {exc}")
    metrics = server.metrics_directory()  # before anything imports prometheus_client
    try:
        database.resolve_url(settings)  # the embedded server, if any, starts once, here
        crypto.secret_key(settings)  # made here on the embedded default, before the workers
        if args.migrate:
            migrations.upgrade()
        host = args.host or settings.app_host
        port = settings.app_port if args.port is None else args.port
        if settings.public_url is None:
            # Emailed links and the tokens' issuer name where we serve; the workers, forked
            # from this process, read the settings again.
            os.environ["PUBLIC_URL"] = (
                f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
            )
            get_settings.cache_clear()
        if settings.embedded:
            _ensure_admin_token(settings, f"http://{host}:{port}")
        base = get_settings().link_base
        logger.info("Console for operators: %s/console; everyone's account: %s/account", base, base)
        for provider in providers:
            logger.info(
                "Sign-in through %s: register %s/auth/providers/%s/callback as a redirect URI "
                "at %s",
                provider.label,
                base,
                provider.name,
                provider.issuer,
            )
        server.run(settings, host=host, port=port, workers=args.workers or settings.app_workers)
    finally:
        shutil.rmtree(metrics, ignore_errors=True)


def _ensure_admin_token(settings: Settings, url: str) -> None:
    """On the embedded database, keep a live token with every scope in a file beside the
    data, readable by its owner only: secure by default, one step for a newcomer."""
    path = settings.db_embedded_dir.parent / ADMIN_TOKEN_FILE

    async def ensure(connection: asyncpg.Connection) -> None:
        if path.exists() and await tokens.is_live(connection, path.read_text().strip()):
            return
        await tokens.revoke(connection, ADMIN_TOKEN_NAME)  # its secret, in a lost file, is gone
        token = await tokens.create(connection, ADMIN_TOKEN_NAME, sorted(_known_scopes()))
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
        os.chmod(path, 0o600)  # in case the file was there before, with looser rights
        logger.info("Created the admin token (every scope) in %s", path)

    _tokens(settings, ensure)
    logger.info(
        'Admin token in %s; try: curl -H "Authorization: Bearer $(cat %s)" %s/users',
        path,
        path,
        url,
    )


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    migrations.upgrade(args.to)


def _downgrade(args: argparse.Namespace, settings: Settings) -> None:
    migrations.downgrade(args.revision)


def _tokens(settings: Settings, use: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `use` on a connection to the application database."""

    async def run() -> T:
        connection = await asyncpg.connect(
            database.dsn(database.resolve_url(settings)),
            statement_cache_size=0 if settings.db_pgbouncer else 100,
            **database.connect_options(settings),
        )
        try:
            return await use(connection)
        finally:
            await connection.close()

    return _run(run)


def _accounts(settings: Settings, use: Callable[["Accounts", "Context"], Awaitable[T]]) -> T:
    """Run `use` with an accounts service of this command's own, acting as the CLI: an
    operator's action from the command line is the same call as from the console."""
    # Imported this late for the reason _known_scopes gives.
    from .accounts.service import Accounts
    from .context import CLI

    async def run() -> T:
        async with database.connect(settings) as db:
            cipher = crypto.Cipher(crypto.secret_key(settings))
            outbox = mail.Sender(db, settings, cipher)
            return await use(Accounts.build(db, settings, cipher, outbox), CLI)

    return _run(run)


def _run(run: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(run())
    except tokens.TokenError as exc:
        sys.exit(f"user-service: {exc}")
    except asyncpg.UndefinedTableError:
        sys.exit("user-service: the database has no api_tokens table; run user-service migrate")


def _scopes(value: str) -> list[str]:
    return sorted({scope.strip() for scope in value.split(",") if scope.strip()})


def _known_scopes() -> dict[str, str]:
    """Every scope a route requires, with what it allows."""
    # Imported this late because the app imports prometheus_client, and `serve` must name
    # the metrics folder before that happens.
    from .auth.guard import SCOPES
    from .main import load_modules

    load_modules()
    return SCOPES


def _duration(value: str) -> timedelta:
    duration = parse_duration(value)
    if not duration:  # none, or zero
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90d, 12h or 30m, not {value!r}"
        )
    return duration


def _token_name(value: str) -> str:
    if not value.strip() or len(value) > 100 or not value.isprintable():
        raise argparse.ArgumentTypeError("must be 1 to 100 printable characters")
    return value


def _create_token(args: argparse.Namespace, settings: Settings) -> None:
    known = _known_scopes()
    unknown = [scope for scope in args.scopes if scope not in known]
    if unknown or not args.scopes:
        sys.exit(
            f"user-service: unknown scope {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(known)}"
        )

    token = _accounts(
        settings,
        lambda accounts, cli: accounts.create_token(
            cli, name=args.name, scopes=args.scopes, expires_in=args.expires_in
        ),
    )
    print(token)  # alone on stdout, so that scripts can capture it
    expiry = "never"
    if args.expires_in:
        expiry = _when(datetime.now(UTC) + args.expires_in)
    logger.info("Created token %r (%s), expiring %s", args.name, ", ".join(args.scopes), expiry)


def _list_tokens(args: argparse.Namespace, settings: Settings) -> None:
    rows = [("NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED", "STATUS")]
    now = datetime.now(UTC)
    for info in _accounts(settings, lambda accounts, _: accounts.api_tokens()):
        if info.revoked_at:
            status = "revoked"
        elif info.expires_at and info.expires_at <= now:
            status = "expired"
        else:
            status = "live"
        rows.append(
            (
                info.name,
                ",".join(info.scopes),
                _when(info.created_at),
                _when(info.expires_at, "never"),
                _when(info.last_used_at, "never"),
                status,
            )
        )
    _table(rows)


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _when(moment: datetime | None, default: str = "") -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ") if moment else default


def _revoke_token(args: argparse.Namespace, settings: Settings) -> None:
    if not _accounts(settings, lambda accounts, cli: accounts.revoke_token(cli, args.name)):
        sys.exit(f"user-service: no live token is named {args.name!r}")
    logger.info("Revoked token %r; it stops working within a second", args.name)


def _rotate_keys(args: argparse.Namespace, settings: Settings) -> None:
    from .accounts import keys

    cipher = crypto.Cipher(crypto.secret_key(settings))
    kids = _tokens(settings, lambda connection: keys.rotate(connection, cipher))
    logger.info(
        "Added signing keys %s: new access and ID tokens use them within a minute; tokens "
        "signed with older keys stay valid until they expire",
        ", ".join(kids),
    )


def _set_scopes(args: argparse.Namespace, settings: Settings) -> None:
    known = _known_scopes()
    unknown = [scope for scope in args.scopes if scope not in known]
    if unknown:
        sys.exit(
            f"user-service: unknown scope {', '.join(unknown)}; choose from {', '.join(known)}"
        )

    scopes = _accounts(
        settings,
        lambda accounts, cli: accounts.set_scopes(cli, args.email, args.scopes, add=args.add),
    )
    if scopes is None:
        sys.exit(f"user-service: no account has the email address {args.email}")
    logger.info(
        "%s now has: %s (taken away at once; granted ones come with the next access token)",
        args.email,
        ", ".join(scopes) or "no scope",
    )


def _create_client(args: argparse.Namespace, settings: Settings) -> None:
    from .accounts.provider import OAuthError

    _known_scopes()  # every module's scopes, which a client may be given
    metadata = {
        "client_name": args.name,
        "redirect_uris": args.redirect_uri,
        "post_logout_redirect_uris": args.post_logout_redirect_uri,
        "grant_types": args.grant_types,
        "token_endpoint_auth_method": "none" if args.public else "client_secret_basic",
        "scope": " ".join(args.scopes),
        "id_token_signed_response_alg": args.id_token_alg,
    }
    try:
        client = _accounts(
            settings,
            lambda accounts, cli: accounts.register_client(
                cli, metadata, first_party=args.first_party
            ),
        )
    except OAuthError as exc:
        sys.exit(f"user-service: {exc.error}: {exc.description}")
    print(json.dumps(client, indent=2))  # the secret, shown this once
    logger.info("Registered client %s (%s)", client["client_id"], args.name)


def _list_clients(args: argparse.Namespace, settings: Settings) -> None:
    rows = [("CLIENT ID", "NAME", "TYPE", "GRANTS", "SCOPES", "CREATED")]
    for client in _accounts(settings, lambda accounts, _: accounts.clients()):
        kind = "public" if client["secret_hash"] is None else "confidential"
        rows.append(
            (
                client["id"],
                client["name"],
                kind + (", first-party" if client["first_party"] else ""),
                ",".join(client["grant_types"]),
                ",".join(client["scopes"]),
                _when(client["created_at"]),
            )
        )
    _table(rows)


def _delete_client(args: argparse.Namespace, settings: Settings) -> None:
    if not _accounts(settings, lambda accounts, cli: accounts.delete_client(cli, args.client_id)):
        sys.exit(f"user-service: no client has the id {args.client_id!r}")
    logger.info("Deleted client %s: its grants ended, its consents are forgotten", args.client_id)


def _rotate_client_secret(args: argparse.Namespace, settings: Settings) -> None:
    secret = _accounts(
        settings, lambda accounts, cli: accounts.rotate_client_secret(cli, args.client_id)
    )
    if secret is None:
        sys.exit(f"user-service: no confidential client has the id {args.client_id!r}")
    print(secret)
    logger.info("New secret for %s: the old one stops working now", args.client_id)


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

    token_commands = commands.add_parser("tokens", help="manage API tokens").add_subparsers(
        required=True, metavar="ACTION"
    )
    create = token_commands.add_parser(
        "create", help="create a token and print it (once: only its hash is kept)"
    )
    create.add_argument("--name", required=True, type=_token_name, help="unique among live tokens")
    create.add_argument(
        "--scopes", required=True, type=_scopes, help="comma-separated, e.g. users:read,users:write"
    )
    create.add_argument(
        "--expires-in", type=_duration, metavar="DURATION", help="e.g. 90d, 12h (default: never)"
    )
    create.set_defaults(run=_create_token)
    token_commands.add_parser("list", help="list tokens (never their secrets)").set_defaults(
        run=_list_tokens
    )
    revoke = token_commands.add_parser("revoke", help="revoke the live token of this name")
    revoke.add_argument("name", metavar="NAME")
    revoke.set_defaults(run=_revoke_token)

    key_commands = commands.add_parser(
        "keys", help="manage the keys that sign access tokens"
    ).add_subparsers(required=True, metavar="ACTION")
    key_commands.add_parser(
        "rotate", help="add a new signing key; tokens signed with older ones stay valid"
    ).set_defaults(run=_rotate_keys)

    client_commands = commands.add_parser(
        "clients", help="manage the applications that sign people in through this service"
    ).add_subparsers(required=True, metavar="ACTION")
    create_client = client_commands.add_parser(
        "create", help="register an application; prints its client_id and secret (once)"
    )
    create_client.add_argument("--name", required=True, help="shown on the consent page")
    create_client.add_argument(
        "--redirect-uri", action="append", default=[], metavar="URI", help="repeatable"
    )
    create_client.add_argument(
        "--post-logout-redirect-uri", action="append", default=[], metavar="URI"
    )
    create_client.add_argument(
        "--grant-types",
        type=_scopes,
        default=["authorization_code", "refresh_token"],
        help="comma-separated (default: authorization_code,refresh_token)",
    )
    create_client.add_argument(
        "--scopes",
        type=_scopes,
        default=["email", "openid", "profile"],
        help="the most it may ask for, comma-separated (default: openid,profile,email)",
    )
    create_client.add_argument(
        "--public", action="store_true", help="no secret (a browser or mobile app; PKCE alone)"
    )
    create_client.add_argument(
        "--first-party", action="store_true", help="one of ours: people are not asked to consent"
    )
    create_client.add_argument("--id-token-alg", default="RS256", choices=["RS256", "EdDSA"])
    create_client.set_defaults(run=_create_client)
    client_commands.add_parser("list", help="list clients (never secrets)").set_defaults(
        run=_list_clients
    )
    delete_client = client_commands.add_parser(
        "delete", help="delete a client; its grants end at once"
    )
    delete_client.add_argument("client_id", metavar="CLIENT_ID")
    delete_client.set_defaults(run=_delete_client)
    rotate_secret = client_commands.add_parser(
        "rotate-secret", help="a new secret for a confidential client, printed once"
    )
    rotate_secret.add_argument("client_id", metavar="CLIENT_ID")
    rotate_secret.set_defaults(run=_rotate_client_secret)

    account_commands = commands.add_parser(
        "accounts", help="grant scopes to people's accounts (operators)"
    ).add_subparsers(required=True, metavar="ACTION")
    for name, add, verb in (("grant", True, "grant"), ("revoke-scope", False, "take away")):
        command = account_commands.add_parser(name, help=f"{verb} scopes of an account")
        command.add_argument("email", metavar="EMAIL")
        command.add_argument("scopes", nargs="+", metavar="SCOPE", help="e.g. users:read")
        command.set_defaults(run=_set_scopes, add=add)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = get_settings_or_exit()
    logging.config.dictConfig(logs.config(settings.log_format))
    try:
        args.run(args, settings)
    except crypto.MissingSecretKeyError as exc:
        sys.exit(f"user-service: {exc}")
    except _CONNECTION_FAILURES as exc:
        sys.exit(f"user-service: cannot use the database: {exc}")
