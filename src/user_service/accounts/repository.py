"""All SQL for accounts, sessions and one-time tokens, in one place."""

from datetime import timedelta
from typing import cast
from uuid import UUID

import asyncpg

from ..addresses import key
from ..crypto import digest, new_token
from ..database import Connection, Database

Runner = Database | Connection


async def create(
    connection: Connection, *, email: str, password_hash: str, name: str
) -> int | None:
    """A new user with an account; None when the address has one already (the unique
    index decides, so of concurrent registrations exactly one succeeds). A savepoint keeps
    the caller's transaction usable either way."""
    try:
        async with connection.transaction():
            user_id: int | None = await connection.fetchval(
                "WITH u AS (INSERT INTO users (nickname) VALUES ($3) RETURNING id) "
                "INSERT INTO accounts (user_id, email, email_key, password_hash) "
                "SELECT id, $1, $4, $2 FROM u RETURNING user_id",
                email,
                password_hash,
                name,
                key(email),
            )
    except asyncpg.UniqueViolationError:
        return None
    return user_id


_ACCOUNT = (
    "SELECT a.user_id, a.email, a.password_hash, a.email_verified_at, a.disabled_at, a.scopes, "
    "a.created_at, u.nickname FROM accounts a JOIN users u ON u.id = a.user_id "
)


async def by_email(db: Runner, email: str) -> asyncpg.Record | None:
    """The account of the address, however it is spelt (addresses.key)."""
    return await db.fetchrow(_ACCOUNT + "WHERE a.email_key = $1", key(email))


async def by_id(db: Runner, user_id: int) -> asyncpg.Record | None:
    return await db.fetchrow(_ACCOUNT + "WHERE a.user_id = $1", user_id)


async def signed_in(connection: Connection, user_id: int, password_hash: str | None) -> None:
    """Record a sign-in; store `password_hash` when the old one used outdated parameters."""
    await connection.execute(
        "UPDATE accounts SET last_sign_in_at = now(), "
        "password_hash = coalesce($2, password_hash) WHERE user_id = $1",
        user_id,
        password_hash,
    )


async def set_password(connection: Connection, user_id: int, password_hash: str) -> None:
    await connection.execute(
        "UPDATE accounts SET password_hash = $2 WHERE user_id = $1", user_id, password_hash
    )


async def verify_email(connection: Connection, user_id: int, email: str) -> bool:
    """Make `email` the account's verified address; False if another account has it now."""
    try:
        await connection.execute(
            "UPDATE accounts SET email = $2, email_key = $3, email_verified_at = now() "
            "WHERE user_id = $1",
            user_id,
            email,
            key(email),
        )
    except asyncpg.UniqueViolationError:
        return False
    return True


async def rename(db: Runner, user_id: int, name: str) -> None:
    await db.fetchval("UPDATE users SET nickname = $2 WHERE id = $1", user_id, name)


async def delete(connection: Connection, user_id: int) -> None:
    """Delete the user; its account, sessions and tokens go with it."""
    await connection.execute("DELETE FROM users WHERE id = $1", user_id)


async def scopes_of(db: Runner, user_id: int) -> list[str]:
    """The scopes of the user's account (none without an account)."""
    scopes: list[str] | None = await db.fetchval(
        "SELECT scopes FROM accounts WHERE user_id = $1", user_id
    )
    return scopes or []


async def set_scopes(db: Runner, email: str, scopes: list[str], *, add: bool) -> list[str] | None:
    """Grant (or take away) scopes; the account's scopes after, or None if no such email."""
    result: list[str] | None = await db.fetchval(
        "UPDATE accounts SET scopes = ARRAY(SELECT DISTINCT s FROM unnest(CASE WHEN $3 "
        "THEN scopes || $2::text[] ELSE ARRAY(SELECT unnest(scopes) EXCEPT "
        "SELECT unnest($2::text[])) END) AS s ORDER BY s) WHERE email_key = $1 "
        "RETURNING scopes",
        key(email),
        scopes,
        add,
    )
    return result


# One-time tokens (email links)


async def issue_link(
    connection: Connection, *, user_id: int, purpose: str, email: str, ttl: timedelta
) -> str:
    """A new one-time token for `purpose`; only its hash is stored."""
    token = new_token()
    await connection.execute(
        "INSERT INTO account_tokens (token_hash, user_id, purpose, email, expires_at) "
        "VALUES ($1, $2, $3, $4, now() + $5::interval)",
        digest(token),
        user_id,
        purpose,
        email,
        ttl,
    )
    return token


async def peek_link(db: Runner, token: str, purpose: str) -> asyncpg.Record | None:
    """The user and address of a usable token, without using it."""
    return await db.fetchrow(
        "SELECT user_id, email FROM account_tokens WHERE token_hash = $1 AND purpose = $2 "
        "AND used_at IS NULL AND expires_at > now()",
        digest(token),
        purpose,
    )


async def use_link(connection: Connection, token: str, purpose: str) -> asyncpg.Record | None:
    """Use a token, once: of concurrent uses exactly one gets its user and address."""
    return await connection.fetchrow(
        "UPDATE account_tokens SET used_at = now() WHERE token_hash = $1 AND purpose = $2 "
        "AND used_at IS NULL AND expires_at > now() RETURNING user_id, email",
        digest(token),
        purpose,
    )


async def drop_links(connection: Connection, user_id: int, purpose: str) -> None:
    """Older links of this kind stop working (a newer one was sent, or one was used)."""
    await connection.execute(
        "UPDATE account_tokens SET used_at = now() WHERE user_id = $1 AND purpose = $2 "
        "AND used_at IS NULL",
        user_id,
        purpose,
    )


# Sessions and refresh tokens


async def open_session(
    connection: Connection,
    *,
    user_id: int,
    ttl: timedelta,
    client_address: str | None,
    user_agent: str | None,
    amr: list[str],
    client_id: str | None = None,
    scopes: list[str] | None = None,
) -> UUID:
    """A browser's or an API client's session; or, with `client_id`, an application's
    grant of `scopes` (the OpenID Provider's)."""
    session_id: UUID = await connection.fetchval(
        "INSERT INTO auth_sessions (user_id, expires_at, client_address, user_agent, amr, "
        "client_id, scopes) VALUES ($1, now() + $2::interval, $3, $4, $5, $6, $7) RETURNING id",
        user_id,
        ttl,
        client_address,
        user_agent,
        amr,
        client_id,
        scopes,
    )
    return session_id


async def issue_refresh(connection: Connection, session_id: UUID) -> str:
    token = new_token("usr_")
    await connection.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        digest(token),
        session_id,
    )
    return token


async def use_refresh(
    connection: Connection, token: str, idle_ttl: timedelta, client_id: str | None = None
) -> asyncpg.Record | None:
    """Use a refresh token, once, if its session is live, of this client (None: a
    person's own) and not idle too long: the session and its user. Of concurrent uses
    exactly one succeeds."""
    return await connection.fetchrow(
        "UPDATE refresh_tokens r SET used_at = now() FROM auth_sessions s "
        "JOIN accounts a ON a.user_id = s.user_id "
        "WHERE r.token_hash = $1 AND r.used_at IS NULL AND r.created_at > now() - $2::interval "
        "AND s.id = r.session_id AND s.revoked_at IS NULL AND s.expires_at > now() "
        "AND a.disabled_at IS NULL AND s.client_id IS NOT DISTINCT FROM $3 "
        "RETURNING s.id AS session_id, s.user_id, a.scopes, s.amr, s.scopes AS granted",
        digest(token),
        idle_ttl,
        client_id,
    )


async def replayed_session(connection: Connection, token: str) -> asyncpg.Record | None:
    """The session (id, user_id) of a refresh token that was used already, if it was."""
    return await connection.fetchrow(
        "SELECT s.id, s.user_id, s.client_id FROM refresh_tokens r JOIN auth_sessions s "
        "ON s.id = r.session_id WHERE r.token_hash = $1 AND r.used_at IS NOT NULL",
        digest(token),
    )


async def touch_session(connection: Connection, session_id: UUID) -> None:
    await connection.execute(
        "UPDATE auth_sessions SET last_used_at = now() WHERE id = $1", session_id
    )


async def revoke_session(db: Runner, session_id: UUID, user_id: int | None = None) -> int | None:
    """End a live session (of `user_id`, when given): its user's id, None if there was none."""
    revoked: int | None = await db.fetchval(
        "UPDATE auth_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL "
        "AND ($2::bigint IS NULL OR user_id = $2) RETURNING user_id",
        session_id,
        user_id,
    )
    return revoked


async def revoke_sessions(db: Runner, user_id: int, keep: UUID | None = None) -> None:
    """End every live session of the user but `keep`."""
    await db.fetchval(
        "UPDATE auth_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL "
        "AND id IS DISTINCT FROM $2",
        user_id,
        keep,
    )


async def live_sessions(db: Runner, user_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, created_at, last_used_at, client_address, user_agent, amr FROM auth_sessions "
        "WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() "
        "AND client_id IS NULL ORDER BY created_at",
        user_id,
    )


async def visitor(db: Runner, session_id: UUID) -> asyncpg.Record | None:
    """The account signed in to this session, while the session is live and the account
    enabled; the session's last use is recorded."""
    return await db.fetchrow(
        "UPDATE auth_sessions s SET last_used_at = now() FROM accounts a JOIN users u "
        "ON u.id = a.user_id WHERE s.id = $1 AND a.user_id = s.user_id "
        "AND s.revoked_at IS NULL AND s.expires_at > now() AND a.disabled_at IS NULL "
        "AND s.client_id IS NULL "
        "RETURNING s.id AS session_id, a.user_id, a.email, a.scopes, s.amr, u.nickname, "
        "s.created_at AS signed_in_at",
        session_id,
    )


async def session_scopes(db: Runner, session_id: UUID, user_id: int) -> asyncpg.Record | None:
    """The scopes of the session's account and how the session was signed in to (`amr`),
    while the session is live and the account enabled; None once it is not. Called at most
    once a second per token and worker."""
    return await db.fetchrow(
        "SELECT a.scopes, s.amr FROM auth_sessions s JOIN accounts a ON a.user_id = s.user_id "
        "WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now() "
        "AND a.disabled_at IS NULL",
        session_id,
        user_id,
    )


# Second factors


async def second_factors(db: Runner, user_id: int) -> asyncpg.Record:
    """Whether the account has a confirmed TOTP secret, its unused recovery codes, its
    passkeys."""
    row = await db.fetchrow(
        "SELECT EXISTS (SELECT FROM totp_secrets WHERE user_id = $1 AND confirmed_at IS NOT "
        "NULL) AS totp, (SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at "
        "IS NULL) AS recovery_codes, (SELECT count(*) FROM passkeys WHERE user_id = $1) "
        "AS passkeys",
        user_id,
    )
    return cast(asyncpg.Record, row)  # a SELECT without FROM always yields its row


async def totp(db: Runner, user_id: int) -> asyncpg.Record | None:
    """The account's TOTP secret (encrypted), whether confirmed, and its last step."""
    return await db.fetchrow(
        "SELECT secret, confirmed_at, last_step FROM totp_secrets WHERE user_id = $1", user_id
    )


async def pend_totp(connection: Connection, user_id: int, secret: bytes) -> bool:
    """Keep a new secret until a code confirms it (replacing a pending one); False when the
    account has a confirmed one."""
    pending: bool | None = await connection.fetchval(
        "INSERT INTO totp_secrets AS t (user_id, secret) VALUES ($1, $2) ON CONFLICT (user_id) "
        "DO UPDATE SET secret = $2, created_at = now(), last_step = 0 "
        "WHERE t.confirmed_at IS NULL RETURNING true",
        user_id,
        secret,
    )
    return bool(pending)


async def use_totp_step(
    connection: Connection, user_id: int, step: int, *, confirming: bool = False
) -> bool:
    """Accept a code of time step `step`, once: a step no later than the last accepted one
    is refused (RFC 6238 §5.2), so of concurrent uses of a code exactly one succeeds.
    `confirming` accepts it for the pending secret, which it confirms."""
    used: bool | None = await connection.fetchval(
        "UPDATE totp_secrets SET last_step = $2, confirmed_at = coalesce(confirmed_at, now()) "
        "WHERE user_id = $1 AND last_step < $2 AND (confirmed_at IS NULL) = $3 RETURNING true",
        user_id,
        step,
        confirming,
    )
    return bool(used)


async def drop_totp(connection: Connection, user_id: int) -> bool:
    """Turn TOTP off, and the recovery codes that came with it; whether it was on."""
    await connection.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
    dropped: bool | None = await connection.fetchval(
        "DELETE FROM totp_secrets WHERE user_id = $1 RETURNING confirmed_at IS NOT NULL",
        user_id,
    )
    return bool(dropped)


async def replace_recovery_codes(connection: Connection, user_id: int, codes: list[str]) -> None:
    """These codes (their hashes) in place of the account's earlier ones."""
    await connection.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
    await connection.executemany(
        "INSERT INTO recovery_codes (code_hash, user_id) VALUES ($1, $2)",
        [(digest(code), user_id) for code in codes],
    )


async def use_recovery_code(connection: Connection, user_id: int, code: str) -> bool:
    """Use one of the account's recovery codes, once."""
    used: bool | None = await connection.fetchval(
        "UPDATE recovery_codes SET used_at = now() WHERE code_hash = $1 AND user_id = $2 "
        "AND used_at IS NULL RETURNING true",
        digest(code),
        user_id,
    )
    return bool(used)


async def passkeys(db: Runner, user_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        "SELECT id, name, created_at, last_used_at, credential_id FROM passkeys "
        "WHERE user_id = $1 ORDER BY created_at",
        user_id,
    )


async def passkey(db: Runner, credential_id: bytes) -> asyncpg.Record | None:
    """The passkey of a credential id, with what checks its signatures."""
    return await db.fetchrow(
        "SELECT id, user_id, public_key, sign_count, synced FROM passkeys WHERE credential_id = $1",
        credential_id,
    )


async def add_passkey(
    connection: Connection,
    *,
    user_id: int,
    credential_id: bytes,
    public_key: bytes,
    sign_count: int,
    name: str,
    synced: bool,
) -> asyncpg.Record | None:
    """Keep a new passkey; None when that credential is registered already."""
    return await connection.fetchrow(
        "INSERT INTO passkeys (user_id, credential_id, public_key, sign_count, name, synced) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (credential_id) DO NOTHING "
        "RETURNING id, name, created_at, last_used_at",
        user_id,
        credential_id,
        public_key,
        sign_count,
        name,
        synced,
    )


async def use_passkey(connection: Connection, passkey_id: UUID, sign_count: int) -> bool:
    """Record a use and the authenticator's new counter, which must have grown (unless it
    keeps none: 0): a clone's stale counter is refused."""
    used: bool | None = await connection.fetchval(
        "UPDATE passkeys SET sign_count = $2, last_used_at = now() WHERE id = $1 "
        "AND (sign_count < $2 OR $2 = 0 AND sign_count = 0) RETURNING true",
        passkey_id,
        sign_count,
    )
    return bool(used)


async def remove_passkey(connection: Connection, user_id: int, passkey_id: UUID) -> str | None:
    """Remove one of the account's passkeys: its name, None if it has no such passkey."""
    name: str | None = await connection.fetchval(
        "DELETE FROM passkeys WHERE id = $1 AND user_id = $2 RETURNING name", passkey_id, user_id
    )
    return name


async def clear_second_factors(connection: Connection, user_id: int) -> None:
    for table in ("recovery_codes", "totp_secrets", "passkeys"):
        await connection.execute(f"DELETE FROM {table} WHERE user_id = $1", user_id)  # noqa: S608


async def new_challenge(
    connection: Connection,
    *,
    user_id: int | None,
    purpose: str,
    ttl: timedelta,
    webauthn_challenge: bytes | None = None,
    replacing: UUID | None = None,
    first_factor: str = "pwd",
) -> str:
    """A sign-in's challenge (second-factor, passkey or new-passkey): its one-time token."""
    token = new_token("mfa_")
    await connection.execute(
        "INSERT INTO sign_in_challenges (token_hash, user_id, purpose, webauthn_challenge, "
        "replacing, expires_at, first_factor) "
        "VALUES ($1, $2, $3, $4, $5, now() + $6::interval, $7)",
        digest(token),
        user_id,
        purpose,
        webauthn_challenge,
        replacing,
        ttl,
        first_factor,
    )
    return token


async def challenge(db: Runner, token: str, purpose: str) -> asyncpg.Record | None:
    """A live, unused challenge of `purpose`."""
    return await db.fetchrow(
        "SELECT user_id, webauthn_challenge, replacing FROM sign_in_challenges "
        "WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()",
        digest(token),
        purpose,
    )


async def set_webauthn_challenge(connection: Connection, token: str, challenge: bytes) -> bool:
    """Attach a passkey's challenge to a live second-factor challenge."""
    updated: bool | None = await connection.fetchval(
        "UPDATE sign_in_challenges SET webauthn_challenge = $2 WHERE token_hash = $1 "
        "AND purpose = 'second-factor' AND used_at IS NULL AND expires_at > now() "
        "RETURNING true",
        digest(token),
        challenge,
    )
    return bool(updated)


async def use_challenge(connection: Connection, token: str, purpose: str) -> asyncpg.Record | None:
    """Use up a challenge, once: of concurrent uses exactly one gets it."""
    return await connection.fetchrow(
        "UPDATE sign_in_challenges SET used_at = now() WHERE token_hash = $1 AND purpose = $2 "
        "AND used_at IS NULL AND expires_at > now() "
        "RETURNING user_id, replacing, webauthn_challenge, first_factor",
        digest(token),
        purpose,
    )


# Operators' changes (the console)


async def operator_view(db: Runner, user_id: int) -> asyncpg.Record | None:
    """A user as operators see it: with its account's state, if it has an account."""
    return await db.fetchrow(
        "SELECT u.id, u.nickname, u.created_at, a.user_id IS NOT NULL AS has_account, a.email, "
        "a.email_verified_at, a.last_sign_in_at, a.disabled_at, a.scopes, "
        "EXISTS (SELECT FROM totp_secrets t WHERE t.user_id = u.id AND t.confirmed_at IS NOT "
        "NULL) OR EXISTS (SELECT FROM passkeys p WHERE p.user_id = u.id) AS second_factor "
        "FROM users u LEFT JOIN accounts a ON a.user_id = u.id WHERE u.id = $1",
        user_id,
    )


async def prove_email(connection: Connection, user_id: int, email: str) -> None:
    """A link sent to `email` was used: if it is still the account's address, it is verified
    (an invitation's or a reset's link proves the address as well as a verification's)."""
    await connection.execute(
        "UPDATE accounts SET email_verified_at = now() WHERE user_id = $1 AND email_key = $2 "
        "AND email_verified_at IS NULL",
        user_id,
        key(email),
    )


async def set_disabled(db: Runner, user_id: int, disabled: bool) -> bool:
    """Disable (or enable) the account; whether that changed anything."""
    changed = await db.fetchval(
        "UPDATE accounts SET disabled_at = CASE WHEN $2 THEN now() END "
        "WHERE user_id = $1 AND (disabled_at IS NULL) = $2 RETURNING true",
        user_id,
        disabled,
    )
    return bool(changed)


async def replace_email(connection: Connection, user_id: int, email: str) -> bool:
    """Give the account a new, unverified address; False if another account has it. A
    savepoint keeps the caller's transaction usable either way."""
    try:
        async with connection.transaction():
            await connection.execute(
                "UPDATE accounts SET email = $2, email_key = $3, email_verified_at = NULL "
                "WHERE user_id = $1",
                user_id,
                email,
                key(email),
            )
    except asyncpg.UniqueViolationError:
        return False
    return True


# What operators read


async def overview(db: Database) -> asyncpg.Record:
    """The counts on the overview: users, accounts, verified accounts, live sessions, and
    sign-ins and sign-ups in the last 24 hours."""
    record = await db.fetchrow(
        "SELECT (SELECT count(*) FROM users) AS users, "
        "(SELECT count(*) FROM accounts) AS accounts, "
        "(SELECT count(*) FROM accounts WHERE email_verified_at IS NOT NULL) AS verified, "
        "(SELECT count(*) FROM auth_sessions WHERE revoked_at IS NULL AND expires_at > now()) "
        "AS sessions, "
        "(SELECT count(*) FROM audit_events WHERE kind = 'signin.succeeded' "
        "AND at > now() - interval '24 hours') AS signins, "
        "(SELECT count(*) FROM audit_events WHERE kind = 'account.registered' "
        "AND at > now() - interval '24 hours') AS signups"
    )
    return cast(asyncpg.Record, record)  # a SELECT without FROM always yields its row
