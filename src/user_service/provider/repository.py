"""All SQL of the OpenID Provider: clients, authorization codes, consents, and the grants
(sessions of an application) they open."""

from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from ..crypto import digest, new_token
from ..database import Connection, Database

Runner = Database | Connection

_CLIENT = (
    "id, name, secret_hash, redirect_uris, post_logout_redirect_uris, grant_types, "
    "auth_method, scopes, id_token_alg, first_party, created_by, created_at"
)


async def create_client(db: Runner, **fields: Any) -> asyncpg.Record:
    names = list(fields)
    row = await db.fetchrow(
        f"INSERT INTO oauth_clients ({', '.join(names)}) "  # noqa: S608 (our own names)
        f"VALUES ({', '.join(f'${i}' for i in range(1, len(names) + 1))}) RETURNING {_CLIENT}",
        *fields.values(),
    )
    assert row is not None  # noqa: S101 (an INSERT … RETURNING returns its row)
    return row


async def client(db: Runner, client_id: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        f"SELECT {_CLIENT} FROM oauth_clients WHERE id = $1",  # noqa: S608
        client_id,
    )


async def clients(db: Runner) -> list[asyncpg.Record]:
    return await db.fetch(f"SELECT {_CLIENT} FROM oauth_clients ORDER BY created_at, id")  # noqa: S608


async def delete_client(db: Runner, client_id: str) -> bool:
    """Delete a client: its codes, consents and grants (sessions) go with it."""
    return bool(
        await db.fetchval("DELETE FROM oauth_clients WHERE id = $1 RETURNING true", client_id)
    )


async def set_secret(db: Runner, client_id: str, secret_hash: bytes) -> bool:
    return bool(
        await db.fetchval(
            "UPDATE oauth_clients SET secret_hash = $2 WHERE id = $1 AND secret_hash IS NOT NULL "
            "RETURNING true",
            client_id,
            secret_hash,
        )
    )


# Authorization codes


async def new_code(connection: Connection, ttl: timedelta, **fields: Any) -> str:
    code = new_token()
    names = ["code_hash", "expires_at", *fields]
    values = [f"${i}" for i in range(3, len(names) + 1)]
    await connection.execute(
        f"INSERT INTO oauth_codes ({', '.join(names)}) "  # noqa: S608 (our own names)
        f"VALUES ($1, now() + $2::interval, {', '.join(values)})",
        digest(code),
        ttl,
        *fields.values(),
    )
    return code


async def use_code(connection: Connection, code: str, client_id: str) -> asyncpg.Record | None:
    """Use a live code of this client, once: of concurrent uses exactly one succeeds."""
    return await connection.fetchrow(
        "UPDATE oauth_codes SET used_at = now() WHERE code_hash = $1 AND client_id = $2 "
        "AND used_at IS NULL AND expires_at > now() RETURNING *",
        digest(code),
        client_id,
    )


async def spent_code(connection: Connection, code: str) -> asyncpg.Record | None:
    """A code that was used already: the grant its first use opened, and whose it is."""
    return await connection.fetchrow(
        "SELECT grant_id, user_id, client_id FROM oauth_codes WHERE code_hash = $1 "
        "AND used_at IS NOT NULL",
        digest(code),
    )


async def set_code_grant(connection: Connection, code: str, grant_id: UUID) -> None:
    await connection.execute(
        "UPDATE oauth_codes SET grant_id = $2 WHERE code_hash = $1", digest(code), grant_id
    )


# Consents and grants


async def consent(db: Runner, user_id: int, client_id: str) -> list[str] | None:
    scopes: list[str] | None = await db.fetchval(
        "SELECT scopes FROM oauth_consents WHERE user_id = $1 AND client_id = $2",
        user_id,
        client_id,
    )
    return scopes


async def add_consent(
    connection: Connection, user_id: int, client_id: str, scopes: list[str]
) -> None:
    await connection.execute(
        "INSERT INTO oauth_consents (user_id, client_id, scopes) VALUES ($1, $2, $3) "
        "ON CONFLICT (user_id, client_id) DO UPDATE SET granted_at = now(), scopes = ARRAY("
        "SELECT DISTINCT unnest(oauth_consents.scopes || excluded.scopes) ORDER BY 1)",
        user_id,
        client_id,
        scopes,
    )


async def connected(db: Runner, user_id: int) -> list[asyncpg.Record]:
    """The applications the person allowed, or that hold a live grant of theirs."""
    return await db.fetch(
        "SELECT c.id, c.name, coalesce(o.scopes, '{}') AS scopes, o.granted_at, "
        "(SELECT count(*) FROM auth_sessions s WHERE s.user_id = $1 AND s.client_id = c.id "
        "AND s.revoked_at IS NULL AND s.expires_at > now()) AS grants "
        "FROM oauth_clients c LEFT JOIN oauth_consents o ON o.client_id = c.id "
        "AND o.user_id = $1 WHERE o.user_id IS NOT NULL OR EXISTS (SELECT 1 FROM auth_sessions s "
        "WHERE s.user_id = $1 AND s.client_id = c.id AND s.revoked_at IS NULL "
        "AND s.expires_at > now()) ORDER BY c.name, c.id",
        user_id,
    )


async def disconnect(connection: Connection, user_id: int, client_id: str) -> bool:
    """Forget the person's consent to the client and end its grants; whether there was
    either."""
    forgot = await connection.fetchval(
        "DELETE FROM oauth_consents WHERE user_id = $1 AND client_id = $2 RETURNING true",
        user_id,
        client_id,
    )
    ended = await connection.fetchval(
        "WITH ended AS (UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 "
        "AND client_id = $2 AND revoked_at IS NULL RETURNING 1) SELECT count(*) FROM ended",
        user_id,
        client_id,
    )
    return bool(forgot) or ended > 0


async def grant(db: Runner, grant_id: UUID) -> asyncpg.Record | None:
    """A live grant (an application's session) with its account."""
    return await db.fetchrow(
        "SELECT s.id, s.user_id, s.client_id, s.scopes, s.amr, s.expires_at, a.email, "
        "a.email_verified_at, u.nickname FROM auth_sessions s JOIN accounts a "
        "ON a.user_id = s.user_id JOIN users u ON u.id = s.user_id WHERE s.id = $1 "
        "AND s.client_id IS NOT NULL AND s.revoked_at IS NULL AND s.expires_at > now() "
        "AND a.disabled_at IS NULL",
        grant_id,
    )


async def refresh_grant(db: Runner, token: str) -> asyncpg.Record | None:
    """The live grant an unused refresh token belongs to."""
    return await db.fetchrow(
        "SELECT s.id, s.user_id, s.client_id, s.scopes, s.expires_at, r.created_at AS iat "
        "FROM refresh_tokens r JOIN auth_sessions s ON s.id = r.session_id "
        "JOIN accounts a ON a.user_id = s.user_id WHERE r.token_hash = $1 "
        "AND r.used_at IS NULL AND s.client_id IS NOT NULL AND s.revoked_at IS NULL "
        "AND s.expires_at > now() AND a.disabled_at IS NULL",
        digest(token),
    )
