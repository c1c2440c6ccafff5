"""Every kind of audit event: what the code records (`record` takes only these) and what
the console's filter offers."""

from typing import Literal, get_args

Kind = Literal[
    "account.registered",
    "account.deleted",
    "email.verified",
    "email.change_requested",
    "signin.succeeded",
    "signin.failed",
    "password.confirm_failed",
    "password.changed",
    "password.reset",
    "session.revoked",
    "scopes.granted",
    "scopes.revoked",
    "api_token.created",
    "api_token.revoked",
    "user.created",
    "user.invited",
    "user.renamed",
    "user.deleted",
    "user.disabled",
    "user.enabled",
    "user.sessions_revoked",
    "user.email_changed_by_admin",
    "user.reset_sent",
    "operator.refused",
    "mfa.totp_enabled",
    "mfa.totp_disabled",
    "mfa.recovery_codes_renewed",
    "mfa.recovery_code_used",
    "mfa.passkey_added",
    "mfa.passkey_removed",
    "mfa.failed",
    "mfa.cleared",
    "client.registered",
    "client.deleted",
    "client.secret_rotated",
    "consent.granted",
    "consent.denied",
    "consent.revoked",
    "oauth.code_replayed",
    "oauth.refresh_replayed",
]

KINDS: tuple[Kind, ...] = get_args(Kind)
