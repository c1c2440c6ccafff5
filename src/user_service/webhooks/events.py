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


def queue(types: str, users: str, subject: str, details: str = "'{}'::jsonb") -> str:
    """Two parts of a WITH clause that queue an event of each type in `types` (SQL yielding
    rows of one text column) for every enabled endpoint subscribed to it; none at all when
    no endpoint is, so a change nobody listens for costs one index probe.

    `users` joins `u` (id, nickname, created_at: the user as changed) and `a` (its account)
    to the types; `subject` is the user's id, for when the user is gone; `details`, jsonb
    added to the event's data."""
    created_at = rfc3339("u.created_at")
    user = (
        "jsonb_build_object('id', u.id, 'nickname', u.nickname, 'email', a.email::text, "
        f"'email_verified', a.email_verified_at IS NOT NULL, 'created_at', {created_at})"
    )
    data = f"CASE WHEN u.id IS NULL THEN jsonb_build_object('id', {subject}) ELSE {user} END"
    # Built from the callers' constants only.
    return (
        "hook_event AS (INSERT INTO webhook_events (id, type, subject_user_id, payload) "  # noqa: S608
        "SELECT 'msg_' || replace(gen_random_uuid()::text, '-', ''), t.type, "
        f"{subject}, jsonb_build_object('type', t.type, 'timestamp', {rfc3339('now()')}, "
        f"'data', {data} || {details}) FROM {types} t(type) {users} "
        "WHERE EXISTS (SELECT FROM webhooks w WHERE w.enabled AND t.type = ANY(w.events)) "
        "RETURNING id, type, subject_user_id), "
        "hook_delivery AS (INSERT INTO webhook_deliveries (webhook_id, event_id, subject_user_id) "
        "SELECT w.id, e.id, e.subject_user_id FROM hook_event e "
        "JOIN webhooks w ON w.enabled AND e.type = ANY(w.events))"
    )
