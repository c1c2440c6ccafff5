"""Which companies' identity providers people may sign in through: SIGNIN_PROVIDERS and, for
each name, SIGNIN_<NAME>_ISSUER, _CLIENT_ID, _CLIENT_SECRET, _LABEL and optional _SCOPES
(from the environment or .env, as every setting)."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from dotenv import dotenv_values

NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
DEFAULT_SCOPES = "openid email profile"
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class SettingError(ValueError):
    """A sign-in provider's setting is missing or malformed: the message names it."""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    name: str
    issuer: str
    client_id: str
    client_secret: str
    label: str
    scopes: str


def configured(environ: Mapping[str, str | None] | None = None) -> list[ProviderSettings]:
    """The providers SIGNIN_PROVIDERS names, in its order; SettingError for a bad one."""
    env = environ if environ is not None else {**dotenv_values(".env"), **os.environ}
    names = [name.strip() for name in (env.get("SIGNIN_PROVIDERS") or "").split(",")]
    providers = []
    for name in filter(None, names):
        if not NAME.fullmatch(name):
            raise SettingError(
                f"SIGNIN_PROVIDERS: {name!r} is not a provider name (a lower-case letter, then "
                "letters, digits or -)"
            )
        prefix = f"SIGNIN_{name.upper().replace('-', '_')}_"

        def need(setting: str, prefix: str = prefix) -> str:
            value = (env.get(prefix + setting) or "").strip()
            if not value:
                raise SettingError(f"{prefix}{setting} is not set")
            return value

        issuer = need("ISSUER").rstrip("/")
        parts = urlsplit(issuer)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)
        if not (secure and parts.hostname) or parts.query or parts.fragment:
            raise SettingError(
                f"{prefix}ISSUER must be the provider's https URL (http only on this machine), "
                f"not {issuer!r}"
            )
        scopes = (env.get(prefix + "SCOPES") or DEFAULT_SCOPES).split()
        if "openid" not in scopes:
            raise SettingError(f"{prefix}SCOPES must include openid")
        providers.append(
            ProviderSettings(
                name,
                issuer,
                need("CLIENT_ID"),
                need("CLIENT_SECRET"),
                need("LABEL"),
                " ".join(scopes),
            )
        )
    if len({p.name for p in providers}) < len(providers):
        raise SettingError("SIGNIN_PROVIDERS names a provider twice")
    return providers
