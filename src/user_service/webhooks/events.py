"""What webhooks tell: the event types, which audited change sends which, and the SQL that
queues an event in the statement (so the transaction) that records its change."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only: importing the audit package imports the modules that import this
    from ..audit.kinds import Kind

# Every type an endpoint may subscribe to, with what it means.
TYPES: dict[str, str] = {
    "user.created": "A user was added (by the API, an invitation or a sign-up).",
    "user.updated": "A user's nickname, email or its verification changed.",
    "user.deleted": "A user was deleted, by an operator or by its own person.",
    "account.verified": "A person verified their email address.",
    "account.signed_in": "A person signed in (by any way in).",
    "account.password_changed": "A person changed or reset their password.",
    "account.disabled": "An operator disabled an account.",
    "account.enabled": "An operator enabled an account again.",
    "mfa.totp_enabled": "A person set up an authenticator app.",
    "mfa.totp_disabled": "A person removed their authenticator app.",
    "mfa.recovery_codes_renewed": "A person made new recovery codes.",
    "mfa.passkey_added": "A person added a passkey.",
    "mfa.passkey_removed": "A person removed a passkey.",
    "mfa.cleared": "An operator removed a person's second factors.",
    "identity.linked": "An account was linked to an identity at a company's provider.",
    "identity.unlinked": "A person unlinked an identity at a company's provider.",
}

# The audited changes that send events (users/repository.py sends the users API's own, in
# the statement that makes them).
FROM_AUDIT: "dict[Kind, tuple[str, ...]]" = {
    "account.registered": ("user.created",),
    "user.invited": ("user.created",),
    "user.renamed": ("user.updated",),
    "user.email_changed_by_admin": ("user.updated",),
    "email.verified": ("account.verified", "user.updated"),
    "account.deleted": ("user.deleted",),
    "signin.succeeded": ("account.signed_in",),
    "password.changed": ("account.password_changed",),
    "password.reset": ("account.password_changed",),
    "user.disabled": ("account.disabled",),
    "user.enabled": ("account.enabled",),
    "mfa.totp_enabled": ("mfa.totp_enabled",),
    "mfa.totp_disabled": ("mfa.totp_disabled",),
    "mfa.recovery_codes_renewed": ("mfa.recovery_codes_renewed",),
    "mfa.passkey_added": ("mfa.passkey_added",),
    "mfa.passkey_removed": ("mfa.passkey_removed",),
    "mfa.cleared": ("mfa.cleared",),
    "identity.linked": ("identity.linked",),
    "identity.unlinked": ("identity.unlinked",),
}
# What of an audit event's details an event carries: never a session id, say.
PUBLIC_DETAILS = ("amr", "email", "name", "provider")


def rfc3339(column: str) -> str:
    """SQL for `column` (a timestamptz) as the API writes it: UTC, `Z`, microseconds only
    when there are any (pydantic's form), so an event's user is byte for byte the API's."""
    utc = f"({column} AT TIME ZONE 'UTC')"
    return (
        f"to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
        f"extract(microseconds FROM {utc})::bigint % 1000000 = 0 THEN '' "
        f"ELSE to_char({utc}, '.US') END || 'Z'"
    )


def queue(kind: str, source: str, subject: str, data: str, *, listed: str) -> str:
    """A part of a WITH clause that writes an event of type `kind` with `data` (jsonb: the
    user's row, exactly id, nickname and created_at, with its account's email and
    email_verified, or its id when it is gone) about `subject` for each row of `source` (a
    FROM clause), if any enabled endpoint is subscribed to one of `listed` (the types as a
    text[] that refers to no row: asked once per statement).

    Every write runs this, so it is as narrow as it can be: it writes the user's row as it
    is, and the fan-out gives it the API's form and its deliveries (repository.fan_out).
    Written in its final form here, with the deliveries, it cut POST /users to 0.87-0.91x
    of the service before webhooks; this way, 0.95x (wrk, 3 rounds each). With no endpoint
    subscribed, pgbench ran that INSERT at 78 % of the rate without webhooks, this one at
    92 %."""
    # Built from the callers' constants only.
    return (
        "hook AS (INSERT INTO webhook_events (type, subject_user_id, payload) "  # noqa: S608
        f"SELECT {kind}, {subject}, {data} FROM {source} "
        f"WHERE EXISTS (SELECT FROM webhooks w WHERE w.enabled AND w.events && {listed}))"
    )


# An account's part of an event's data: the account joined as `a`, or none (a new user's).
ACCOUNT = (
    "jsonb_build_object('email', a.email::text, 'email_verified', a.email_verified_at IS NOT NULL)"
)
NO_ACCOUNT = """'{"email": null, "email_verified": false}'::jsonb"""
