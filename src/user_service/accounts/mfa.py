"""A second factor: an authenticator app's codes (TOTP, RFC 6238), recovery codes, passkeys
(WebAuthn, with py_webauthn); setting them up, and the second step of a sign-in. A passkey
also signs in alone. Every way in ends in SignIn.open_session."""

import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import pyotp
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import parse_authentication_credential_json
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from ..audit.repository import record
from ..context import Context
from ..database import Connection
from . import emails, repository, throttle
from .errors import (
    InvalidMfaTokenError,
    InvalidPasskeyError,
    NoPasskeyError,
    NothingPendingError,
    TooManyRequestsError,
    TotpOffError,
    TotpOnError,
    WrongCodeError,
)
from .signin import CHALLENGE_TTL, Opened, SignIn

RECOVERY_CODES = 10
# Recovery codes: 10 of these letters (about 50 bits), none that reads as another.
_LETTERS = "abcdefghjkmnpqrstuvwxyz23456789"


@dataclass(frozen=True)
class Proof:
    """What a person shows as their second factor: one of these."""

    code: str | None = None  # the authenticator app's
    recovery_code: str | None = None
    credential: dict[str, Any] | None = None  # a passkey's answer (WebAuthn's JSON)


def _recovery_codes() -> list[str]:
    codes = ("".join(secrets.choice(_LETTERS) for _ in range(10)) for _ in range(RECOVERY_CODES))
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def _recovery_form(code: str) -> str:
    # As shown (abcde-fghij), or typed without the dash, in capitals, with spaces.
    return "".join(code.split()).replace("-", "").lower()


def _step_of(secret: str, code: str, after: int) -> int | None:
    """The time step `code` is of, within one step either way of now (RFC 6238 §5.2's
    allowance for clocks and typing), if it is later than `after`."""
    totp = pyotp.TOTP(secret)  # SHA-1, 6 digits, 30 s: RFC 6238's defaults, every app's
    now = int(time.time()) // totp.interval
    for step in (now - 1, now, now + 1):
        if step > after and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _descriptors(passkeys: list[asyncpg.Record]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=key["credential_id"]) for key in passkeys]


def _mfa_key(user_id: int) -> str:
    return f"mfa:{user_id}"


class SecondFactors(SignIn):
    # The relying party of passkeys: this site, as PUBLIC_URL names it.

    @property
    def _rp_id(self) -> str:
        return urlsplit(self.settings.link_base).hostname or "localhost"

    @property
    def _origin(self) -> str:
        parts = urlsplit(self.settings.link_base)
        return f"{parts.scheme}://{parts.netloc}"

    async def second_factor_status(self, user_id: int) -> dict[str, Any]:
        factors = await repository.second_factors(self.db, user_id)
        keys = await repository.passkeys(self.db, user_id)
        return {
            "totp": factors["totp"],
            "recovery_codes_left": factors["recovery_codes"] if factors["totp"] else 0,
            "passkeys": [
                {key: row[key] for key in ("id", "name", "created_at", "last_used_at")}
                for row in keys
            ],
        }

    # An authenticator app

    async def start_totp(self, context: Context, user_id: int, password: str) -> tuple[str, str]:
        """A new secret, pending until a code confirms it: the secret and its otpauth URI."""
        account = await self.confirm(context, user_id, password)
        secret = pyotp.random_base32()
        encrypted = self.cipher.encrypt(secret.encode())
        async with self.db.transaction() as connection:
            if not await repository.pend_totp(connection, user_id, encrypted):
                raise TotpOnError
        issuer = urlsplit(self.settings.link_base).hostname or "user-service"
        uri = pyotp.TOTP(secret).provisioning_uri(name=account["email"], issuer_name=issuer)
        return secret, uri

    async def confirm_totp(self, context: Context, user_id: int, code: str) -> list[str]:
        """Turn the pending secret on with a code of it: the recovery codes, shown this once."""
        pending = await repository.totp(self.db, user_id)
        if pending is None or pending["confirmed_at"] is not None:
            raise NothingPendingError
        await self._allowed(user_id)
        step = _step_of(self._secret(pending), code, pending["last_step"])
        codes = _recovery_codes()
        async with self.db.transaction() as connection:
            if step is None or not await repository.use_totp_step(
                connection, user_id, step, confirming=True
            ):
                await self._failed(context, user_id)
            await repository.replace_recovery_codes(connection, user_id, codes)
            await record(connection, context, "mfa.totp_enabled", user_id)
            await self._notify(connection, user_id, "An authenticator app was set up for it.")
        await throttle.clear(self.db, _mfa_key(user_id))
        self.sent()
        return codes

    async def stop_totp(self, context: Context, user_id: int, password: str, proof: Proof) -> None:
        """Turn the authenticator app off (and its recovery codes), shown the password and
        a code or a recovery code."""
        await self.confirm(context, user_id, password)
        await self._totp_on(user_id)
        async with self.db.transaction() as connection:
            await self._prove(connection, context, user_id, proof)
            await repository.drop_totp(connection, user_id)
            await record(connection, context, "mfa.totp_disabled", user_id)
            await self._notify(connection, user_id, "Its authenticator app was turned off.")
        self.sent()

    async def renew_recovery_codes(
        self, context: Context, user_id: int, password: str, proof: Proof
    ) -> list[str]:
        """New recovery codes in place of the old, shown the password and a code or a
        recovery code: the codes, shown this once."""
        await self.confirm(context, user_id, password)
        await self._totp_on(user_id)
        codes = _recovery_codes()
        async with self.db.transaction() as connection:
            await self._prove(connection, context, user_id, proof)
            await repository.replace_recovery_codes(connection, user_id, codes)
            await record(connection, context, "mfa.recovery_codes_renewed", user_id)
        return codes

    # Passkeys

    async def passkey_options(
        self, context: Context, user_id: int, password: str
    ) -> tuple[str, dict[str, Any]]:
        """What the browser needs to make a passkey for this site, shown the password: a
        challenge token and the options (navigator.credentials.create's, as JSON)."""
        account = await self.confirm(context, user_id, password)
        known = await repository.passkeys(self.db, user_id)
        options = generate_registration_options(
            rp_id=self._rp_id,
            rp_name=self._rp_id,
            user_id=str(user_id).encode(),
            user_name=account["email"],
            user_display_name=account["nickname"],
            # Discoverable: it signs in alone, no address typed.
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.REQUIRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=_descriptors(known),
        )
        token = await self._challenge(user_id, "new-passkey", options.challenge)
        return token, json.loads(options_to_json(options))

    async def add_passkey(
        self, context: Context, user_id: int, token: str, name: str, credential: dict[str, Any]
    ) -> asyncpg.Record:
        """Keep the passkey the browser made for the challenge of `token`: 400 for an
        answer of another challenge, origin or site, and nothing kept."""
        async with self.db.transaction() as connection:
            challenge = await repository.use_challenge(connection, token, "new-passkey")
            if challenge is None or challenge["user_id"] != user_id:
                raise InvalidPasskeyError
            try:
                made = verify_registration_response(
                    credential=credential,
                    expected_challenge=challenge["webauthn_challenge"],
                    expected_rp_id=self._rp_id,
                    expected_origin=self._origin,
                )
            except (WebAuthnException, ValueError, KeyError, TypeError):
                raise InvalidPasskeyError from None
            added = await repository.add_passkey(
                connection,
                user_id=user_id,
                credential_id=made.credential_id,
                public_key=made.credential_public_key,
                sign_count=made.sign_count,
                name=name,
                synced=made.credential_backed_up,
            )
            if added is None:
                raise InvalidPasskeyError("This passkey is registered already.")
            await record(connection, context, "mfa.passkey_added", user_id, name=name)
            await self._notify(connection, user_id, f"A passkey ({name}) was added to it.")
        self.sent()
        return added

    async def remove_passkey(
        self, context: Context, user_id: int, passkey_id: UUID, password: str
    ) -> None:
        await self.confirm(context, user_id, password)
        async with self.db.transaction() as connection:
            name = await repository.remove_passkey(connection, user_id, passkey_id)
            if name is None:
                raise NoPasskeyError(passkey_id)
            await record(connection, context, "mfa.passkey_removed", user_id, name=name)
            await self._notify(connection, user_id, f"Its passkey {name} was removed.")
        self.sent()

    # Signing in

    async def passkey_sign_in_options(
        self, context: Context, replacing: UUID | None = None
    ) -> tuple[str, dict[str, Any]]:
        """A challenge for signing in with a passkey alone: its token and the options
        (navigator.credentials.get's, as JSON; any of this site's passkeys answers)."""
        await self.limit_address("login", context)
        options = generate_authentication_options(
            rp_id=self._rp_id, user_verification=UserVerificationRequirement.PREFERRED
        )
        token = await self._challenge(None, "passkey", options.challenge, replacing)
        return token, json.loads(options_to_json(options))

    async def passkey_sign_in(
        self, context: Context, token: str, credential: dict[str, Any]
    ) -> Opened:
        """Sign in with a passkey alone: two factors when the authenticator verified its
        user (a PIN, a fingerprint), one otherwise."""
        await self.limit_address("login", context)
        async with self.db.transaction() as connection:
            challenge = await repository.use_challenge(connection, token, "passkey")
            if challenge is None:
                raise InvalidPasskeyError
            user_id, factor, verified = await self._verify_passkey(
                connection, credential, challenge["webauthn_challenge"]
            )
            account = await repository.by_id(connection, user_id)
            if account is None:
                raise InvalidPasskeyError
            self.may_sign_in(account)
            amr = [factor, "mfa"] if verified else [factor]
            return await self.open_session(
                connection, context, account, amr, challenge["replacing"]
            )

    async def second_factor_options(self, mfa_token: str) -> dict[str, Any]:
        """For a passkey as the second factor: options naming the account's passkeys."""
        challenge = await repository.challenge(self.db, mfa_token, "second-factor")
        if challenge is None:
            raise InvalidMfaTokenError
        known = await repository.passkeys(self.db, challenge["user_id"])
        options = generate_authentication_options(
            rp_id=self._rp_id,
            allow_credentials=_descriptors(known),
            user_verification=UserVerificationRequirement.PREFERRED,
        )
        async with self.db.transaction() as connection:
            attached = await repository.set_webauthn_challenge(
                connection, mfa_token, options.challenge
            )
        if not attached:
            raise InvalidMfaTokenError
        options_json: dict[str, Any] = json.loads(options_to_json(options))
        return options_json

    async def methods_of(self, mfa_token: str) -> list[str]:
        """The second factors a live challenge may be answered with."""
        challenge = await repository.challenge(self.db, mfa_token, "second-factor")
        if challenge is None:
            raise InvalidMfaTokenError
        return await self.second_factor_methods(challenge["user_id"])

    async def complete_sign_in(self, context: Context, mfa_token: str, proof: Proof) -> Opened:
        """The second step of a sign-in whose password was right."""
        challenge = await repository.challenge(self.db, mfa_token, "second-factor")
        if challenge is None:
            raise InvalidMfaTokenError
        user_id = challenge["user_id"]
        await self._allowed(user_id)
        async with self.db.transaction() as connection:
            factor = await self._prove(
                connection, context, user_id, proof, challenge["webauthn_challenge"]
            )
            used = await repository.use_challenge(connection, mfa_token, "second-factor")
            account = await repository.by_id(connection, user_id)
            if used is None or account is None:  # completed meanwhile, or deleted
                raise InvalidMfaTokenError
            self.may_sign_in(account)
            opened = await self.open_session(
                connection,
                context,
                account,
                [used["first_factor"], factor, "mfa"],
                used["replacing"],
            )
        await throttle.clear(self.db, _mfa_key(user_id))
        return opened

    # Steps of their own

    def _secret(self, row: asyncpg.Record) -> str:
        return self.cipher.decrypt(row["secret"]).decode()

    async def _totp_on(self, user_id: int) -> None:
        row = await repository.totp(self.db, user_id)
        if row is None or row["confirmed_at"] is None:
            raise TotpOffError

    async def _allowed(self, user_id: int) -> None:
        """429 while the account waits after wrong second steps (shared by every worker,
        whichever challenge they came with)."""
        retry_after = await throttle.blocked_for(self.db, _mfa_key(user_id))
        if retry_after is not None:
            raise TooManyRequestsError(retry_after, "wrong second steps for this account")

    async def _failed(
        self, context: Context, user_id: int, error: Exception | None = None
    ) -> NoReturn:
        # On connections of their own: the caller's transaction is about to roll back.
        await throttle.fail(self.db, _mfa_key(user_id))
        await record(self.db, context, "mfa.failed", user_id)
        raise error or WrongCodeError

    async def _prove(
        self,
        connection: Connection,
        context: Context,
        user_id: int,
        proof: Proof,
        webauthn_challenge: bytes | None = None,
    ) -> str:
        """Check and use up a second factor: its amr value (otp, hwk or swk)."""
        await self._allowed(user_id)
        if proof.code is not None:
            row = await repository.totp(connection, user_id)
            if row is not None and row["confirmed_at"] is not None:
                step = _step_of(self._secret(row), proof.code, row["last_step"])
                if step is not None and await repository.use_totp_step(connection, user_id, step):
                    return "otp"
        elif proof.recovery_code is not None:
            code = _recovery_form(proof.recovery_code)
            shown = f"{code[:5]}-{code[5:]}"
            if await repository.use_recovery_code(connection, user_id, shown):
                await record(connection, context, "mfa.recovery_code_used", user_id)
                return "otp"  # a one-time password, as RFC 8176 has no word of its own
        elif proof.credential is not None and webauthn_challenge is not None:
            try:
                owner, factor, _ = await self._verify_passkey(
                    connection, proof.credential, webauthn_challenge
                )
            except InvalidPasskeyError as exc:
                await self._failed(context, user_id, exc)
            if owner == user_id:
                return factor
        await self._failed(context, user_id)

    async def _verify_passkey(
        self, connection: Connection, credential: dict[str, Any], challenge: bytes | None
    ) -> tuple[int, str, bool]:
        """Check a passkey's answer to `challenge` and record its use: its account's id,
        its amr value (hwk, or swk for one synced between devices), whether the
        authenticator verified its user."""
        try:
            parsed = parse_authentication_credential_json(credential)
        except (WebAuthnException, ValueError, KeyError, TypeError):
            raise InvalidPasskeyError from None
        key = await repository.passkey(connection, parsed.raw_id)
        if key is None or challenge is None:
            raise InvalidPasskeyError
        handle = parsed.response.user_handle
        if handle is not None and handle != str(key["user_id"]).encode():
            raise InvalidPasskeyError
        try:
            verified = verify_authentication_response(
                credential=parsed,
                expected_challenge=challenge,
                expected_rp_id=self._rp_id,
                expected_origin=self._origin,
                credential_public_key=key["public_key"],
                credential_current_sign_count=key["sign_count"],
            )
        except (WebAuthnException, ValueError, KeyError, TypeError):
            raise InvalidPasskeyError from None
        if not await repository.use_passkey(connection, key["id"], verified.new_sign_count):
            raise InvalidPasskeyError  # a counter gone back: a copy of the key
        return key["user_id"], "swk" if key["synced"] else "hwk", verified.user_verified

    async def _challenge(
        self, user_id: int | None, purpose: str, webauthn: bytes, replacing: UUID | None = None
    ) -> str:
        async with self.db.transaction() as connection:
            return await repository.new_challenge(
                connection,
                user_id=user_id,
                purpose=purpose,
                ttl=CHALLENGE_TTL,
                webauthn_challenge=webauthn,
                replacing=replacing,
            )

    async def _notify(self, connection: Connection, user_id: int, what: str) -> None:
        account = await repository.by_id(connection, user_id)
        if account is not None:
            text = f"The sign-in of your account changed. {what}"
            message = emails.second_factor_changed(text, self.link("forgot-password"))
            await self.send(connection, account["email"], message)
