"""All SQL of the pages that is theirs alone (the flows' SQL is the accounts' and users')."""

from uuid import UUID

import asyncpg

from ..database import Database


async def visitor(db: Database, session_id: UUID) -> asyncpg.Record | None:
    """The account signed in to this session, while the session is live and the account
    enabled; the session's last use is recorded."""
    return await db.fetchrow(
        "UPDATE auth_sessions s SET last_used_at = now() FROM accounts a JOIN users u "
        "ON u.id = a.user_id WHERE s.id = $1 AND a.user_id = s.user_id "
        "AND s.revoked_at IS NULL AND s.expires_at > now() AND a.disabled_at IS NULL "
        "RETURNING s.id AS session_id, a.user_id, a.email, a.scopes, u.nickname",
        session_id,
    )
