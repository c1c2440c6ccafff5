"""Settings: environment first, then `.env`, then defaults (the tutorial's variables)."""

import os
import re
import sys
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AnyHttpUrl,
    BeforeValidator,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE = "user_service"
POSTGRES_DRIVERS = ("postgresql", "postgres", "postgresql+asyncpg")

_DURATION = re.compile(r"(\d+)([smhdw]?)")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    """`900` (seconds), `45s`, `15m`, `24h`, `30d` or `2w`; None if `text` is none of these."""
    match = _DURATION.fullmatch(text.strip())
    return timedelta(**{_UNITS[match[2] or "s"]: int(match[1])}) if match else None


def _duration(value: object) -> object:
    # Anything else is left to pydantic (ISO 8601: PT15M).
    parsed = parse_duration(value) if isinstance(value, str) else None
    return value if parsed is None else parsed


Duration = Annotated[timedelta, BeforeValidator(_duration)]

SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    testing: bool = False

    db_driver: str = "postgresql"
    db_host: str | None = None
    db_port: int | None = Field(default=None, ge=1, le=65535)
    db_user: str | None = None
    db_password: SecretStr | None = None
    db_database: str | None = None
    db_dsn: str | None = None
    db_pool_min_size: int = Field(default=1, ge=0)
    db_pool_max_size: int = Field(default=16, ge=1)
    db_echo: bool = False
    db_ssl: SslMode | None = None
    db_ssl_root_cert: Path | None = None
    db_pgbouncer: bool = False
    db_retry_limit: int = Field(default=1, ge=1)
    db_retry_interval: float = Field(default=1, ge=0)
    db_connect_timeout: float = Field(default=5, gt=0)
    db_acquire_timeout: float = Field(default=5, gt=0)
    db_statement_timeout: float = Field(default=10, gt=0)
    db_embedded_dir: Path = Path(".data/postgres")

    app_host: str = "127.0.0.1"
    app_port: int = Field(default=8000, ge=0, le=65535)
    app_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    app_graceful_timeout: int = Field(default=20, ge=1)
    app_max_body_bytes: int = Field(default=64 * 1024, ge=1)
    # Proxies whose X-Forwarded-For names the client (whose address the rate limit counts).
    app_forwarded_allow_ips: str = "127.0.0.1,::1"

    # JWTs from an identity provider are accepted when all three are set.
    auth_jwks_url: AnyHttpUrl | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_leeway: float = Field(default=30, ge=0)  # seconds of clock skew allowed on exp/nbf
    auth_jwks_refetch_interval: float = Field(default=10, ge=0)  # on an unknown key id
    auth_failures_per_minute: int = Field(default=20, ge=1)  # per client address
    # How long a checked token (or an OpenID client) is trusted before it is checked again: a
    # revoked token, an ended session, a scope taken away, a deleted client or its old secret
    # stops working within this, on every worker.
    auth_token_cache_seconds: float = Field(default=1, ge=0)

    # Accounts: people who sign up and sign in (the accounts module).
    # Encrypts the private signing keys and queued emails at rest; the embedded default
    # generates one into .data/secret.key.
    auth_secret_key: SecretStr | None = None
    auth_access_ttl: Duration = Field(default=timedelta(minutes=15), gt=timedelta(0))
    auth_refresh_ttl: Duration = Field(default=timedelta(days=30), gt=timedelta(0))
    auth_refresh_idle_ttl: Duration = Field(default=timedelta(days=7), gt=timedelta(0))
    auth_verify_ttl: Duration = Field(default=timedelta(hours=24), gt=timedelta(0))
    auth_reset_ttl: Duration = Field(default=timedelta(minutes=30), gt=timedelta(0))
    # Per client address, for each of register, login, forgot-password and verify/resend.
    auth_address_limit_per_minute: int = Field(default=10, ge=1)
    password_min_length: int = Field(default=12, ge=8, le=256)
    # Whether an account holding any scope must have signed in with two factors to use them.
    auth_operator_mfa: Literal["required", "optional"] = "required"
    # argon2id cost (OWASP: at least 19 MiB and 2 passes) and how many hashes run at once
    # per worker; requests beyond AUTH_HASH_QUEUE waiting ones get 503.
    auth_argon2_memory_kib: int = Field(default=19 * 1024, ge=8)
    auth_argon2_time_cost: int = Field(default=2, ge=1)
    auth_hash_concurrency: int = Field(default=2, ge=1)
    auth_hash_queue: int = Field(default=32, ge=0)
    # Links in emails start with this; never taken from a request's Host header.
    public_url: AnyHttpUrl | None = None
    # With an https PUBLIC_URL, browsers are told to use https alone for this long (at
    # least 180 days, as the HSTS preload list asks).
    hsts_max_age: int = Field(default=365 * 24 * 3600, ge=180 * 24 * 3600)

    smtp_host: str | None = None
    smtp_port: int | None = Field(default=None, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout: float = Field(default=10, gt=0)
    mail_from: str = "user-service <no-reply@localhost>"
    # Without SMTP_HOST, emails are written here as .eml files.
    mail_outbox_dir: Path = Path(".data/outbox")
    # Whether this instance delivers queued email (each one that does takes its share).
    mail_sender: bool = True

    # Webhooks: whether this instance delivers them (each one that does takes its share);
    # the networks their URLs may reach besides the public internet (none by default: a
    # loopback, private, link-local or reserved address is refused), where http is allowed
    # too; how long a receiver may take; the waits between attempts (the last repeats) and
    # for how long an event is retried before it is marked failed.
    webhook_delivery: bool = True
    webhook_allowed_networks: Annotated[list[IPvAnyNetwork], NoDecode] = []
    webhook_timeout: float = Field(default=10, gt=0)
    webhook_retry_delays: Annotated[list[Duration], NoDecode] = Field(
        default=[timedelta(seconds=s) for s in (5, 30, 120, 600, 3600, 6 * 3600, 12 * 3600)],
        min_length=1,
    )
    webhook_retry_for: Duration = Field(default=timedelta(days=3), gt=timedelta(0))

    metrics_public: bool = False
    docs_enabled: bool = True  # /openapi.json and the pages of API_DOCS
    api_docs: bool = True  # /docs and /redoc
    cors_origins: Annotated[list[str], NoDecode] = []

    # json for machines (the default outside a terminal), text for people.
    log_format: Literal["json", "text"] = Field(
        default_factory=lambda: "text" if sys.stderr.isatty() else "json"
    )

    @field_validator("db_driver")
    @classmethod
    def _postgres_driver(cls, value: str) -> str:
        if value not in POSTGRES_DRIVERS:
            raise ValueError(f"must be one of {', '.join(POSTGRES_DRIVERS)}")
        return value

    @field_validator(
        "cors_origins", "webhook_allowed_networks", "webhook_retry_delays", mode="before"
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _oidc_complete(self) -> "Settings":
        oidc = {
            "AUTH_JWKS_URL": self.auth_jwks_url,
            "AUTH_ISSUER": self.auth_issuer,
            "AUTH_AUDIENCE": self.auth_audience,
        }
        if any(oidc.values()) and not all(oidc.values()):
            missing = ", ".join(name for name, value in oidc.items() if not value)
            raise ValueError(f"JWT authentication needs {missing} as well")
        return self

    @field_validator("db_pool_max_size")
    @classmethod
    def _pool_fits(cls, value: int, info: ValidationInfo) -> int:
        minimum = info.data.get("db_pool_min_size", 0)
        if value < minimum:
            raise ValueError(f"must be at least DB_POOL_MIN_SIZE ({minimum})")
        return value

    @field_validator("db_dsn")
    @classmethod
    def _parsable_dsn(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("not a URL such as postgresql://user:password@host:5432/db") from None
        if url.drivername not in POSTGRES_DRIVERS:
            raise ValueError(f"scheme must be one of {', '.join(POSTGRES_DRIVERS)}")
        return value

    @property
    def link_base(self) -> str:
        """Where the emails' links point: PUBLIC_URL, else this service's own address."""
        if self.public_url is not None:
            return str(self.public_url).rstrip("/")
        return f"http://{self.app_host}:{self.app_port}"

    @property
    def embedded(self) -> bool:
        """No server configured: the service runs its own PostgreSQL."""
        return self.db_dsn is None and self.db_host is None

    def database_url(self, server_url: str | None = None) -> URL:
        """The application database: DB_DSN wins over the individual DB_* variables.

        `server_url` is the embedded server's address, used when no server is configured.
        """
        if self.db_dsn is not None:
            url = make_url(self.db_dsn)
            database = url.database
        elif server_url is not None:
            url = make_url(server_url)
            database = self.db_database
        else:
            password = self.db_password.get_secret_value() if self.db_password else None
            url = URL.create(
                self.db_driver,
                username=self.db_user,
                password=password,
                host=self.db_host,
                port=self.db_port,
            )
            database = self.db_database
        database = database or DEFAULT_DATABASE
        if self.testing:
            database += "_test"
        return url.set(drivername="postgresql", database=database)


@lru_cache
def get_settings() -> Settings:
    """The settings, read once per process."""
    return Settings()


def get_settings_or_exit() -> Settings:
    """The settings, or exit with one line naming each bad variable (no traceback)."""
    try:
        return get_settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'_'.join(map(str, error['loc'])).upper() or 'settings'}: {error['msg']}"
            for error in exc.errors()
        )
        sys.exit(f"user-service: invalid configuration: {problems}")
