"""All SQL of the upstream sign-in: identities at companies' providers."""

import asyncpg

from ..database import Connection, Database

Runner = Database | Connection


async def identity(db: Runner, provider: str, subject: str) -> asyncpg.Record | None:
    return await db.fetchrow(
        "UPDATE identities SET last_used_at = now() WHERE provider = $1 AND subject = $2 "
        "RETURNING user_id",
        provider,
        subject,
    )


async def link(
    connection: Connection, provider: str, subject: str, user_id: int, email: str | None
) -> None:
    await connection.execute(
        "INSERT INTO identities (provider, subject, user_id, email, last_used_at) "
        "VALUES ($1, $2, $3, $4, now())",
        provider,
        subject,
        user_id,
        email,
    )


async def of(db: Runner, user_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT provider, subject, email, created_at, last_used_at FROM identities "
        "WHERE user_id = $1 ORDER BY created_at, provider",
        user_id,
    )


async def unlink(connection: Connection, user_id: int, provider: str, subject: str) -> bool:
    return bool(
        await connection.fetchval(
            "DELETE FROM identities WHERE user_id = $1 AND provider = $2 AND subject = $3 "
            "RETURNING true",
            user_id,
            provider,
            subject,
        )
    )
