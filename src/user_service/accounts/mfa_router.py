"""The second factor's API: setting up an authenticator app, recovery codes and passkeys
(/users/me/mfa), the second step of a sign-in (/auth/mfa), and signing in with a passkey
alone (/auth/passkey). Each route is one call on the accounts service."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Request, Response

from .. import errors
from ..context import from_request
from ..http import JSON_BODY, Json
from . import schemas
from .mfa import Proof
from .router import Person
from .service import Service

me = APIRouter(
    prefix="/users/me/mfa", tags=["accounts"], responses=errors.responses(401, 403, 429, 503)
)
auth = APIRouter(prefix="/auth", tags=["accounts"], responses=errors.responses(429, 503))


def _proof(body: schemas.PasswordAndFactor | schemas.SecondStep) -> Proof:
    return Proof(
        code=getattr(body, "code", None),
        recovery_code=getattr(body, "recovery_code", None),
        credential=getattr(body, "credential", None),
    )


@me.get("", response_model=schemas.SecondFactorStatus)
async def status(person: Person, accounts: Service) -> Json:
    """My second factors."""
    return Json(await accounts.second_factor_status(person.user_id))


@me.post(
    "/totp",
    status_code=201,
    response_model=schemas.TotpSecret,
    responses=errors.responses(400, 409, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def start_totp(
    body: schemas.PasswordIn, person: Person, request: Request, accounts: Service
) -> Json:
    """Set up an authenticator app (RFC 6238: SHA-1, 6 digits, 30 s): the secret to type
    or the otpauth:// URI to scan. It works once confirmed with a code of it."""
    secret, uri = await accounts.start_totp(from_request(request), person.user_id, body.password)
    return Json(schemas.TotpSecret(secret=secret, otpauth_uri=uri), status_code=201)


@me.post(
    "/totp/confirm",
    response_model=schemas.RecoveryCodes,
    responses=errors.responses(400, 409, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def confirm_totp(
    body: schemas.CodeIn, person: Person, request: Request, accounts: Service
) -> Json:
    """Turn the authenticator app on with a code of it: ten recovery codes, shown this once,
    each good for one sign-in."""
    codes = await accounts.confirm_totp(from_request(request), person.user_id, body.code)
    return Json(schemas.RecoveryCodes(recovery_codes=codes))


@me.delete(
    "/totp",
    status_code=204,
    responses=errors.responses(400, 409, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def stop_totp(
    body: schemas.PasswordAndFactor, person: Person, request: Request, accounts: Service
) -> Response:
    """Turn the authenticator app off, with the password and a code (or a recovery code);
    its recovery codes go with it."""
    context = from_request(request)
    await accounts.stop_totp(context, person.user_id, body.password, _proof(body))
    return Response(status_code=204)


@me.post(
    "/recovery-codes",
    response_model=schemas.RecoveryCodes,
    responses=errors.responses(400, 409, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def renew_recovery_codes(
    body: schemas.PasswordAndFactor, person: Person, request: Request, accounts: Service
) -> Json:
    """Ten new recovery codes, with the password and a code (or a recovery code); the old
    ones stop working."""
    context = from_request(request)
    codes = await accounts.renew_recovery_codes(
        context, person.user_id, body.password, _proof(body)
    )
    return Json(schemas.RecoveryCodes(recovery_codes=codes))


@me.post(
    "/passkey-options",
    response_model=schemas.WebAuthnOptions,
    responses=errors.responses(400, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def passkey_options(
    body: schemas.PasswordIn, person: Person, request: Request, accounts: Service
) -> Json:
    """Options for navigator.credentials.create (WebAuthn's JSON), with the password; send
    what it makes, with the challenge_token, within 5 minutes."""
    token, options = await accounts.passkey_options(
        from_request(request), person.user_id, body.password
    )
    return Json(schemas.WebAuthnOptions(challenge_token=token, options=options))


@me.post(
    "/passkeys",
    status_code=201,
    response_model=schemas.Passkey,
    responses=errors.responses(400, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def add_passkey(
    body: schemas.NewPasskey, person: Person, request: Request, accounts: Service
) -> Json:
    """Keep the passkey the browser made: 400 if it answers another challenge, origin or
    site, and nothing is kept."""
    added = await accounts.add_passkey(
        from_request(request), person.user_id, body.challenge_token, body.name, body.credential
    )
    passkey = schemas.Passkey(
        id=added["id"],
        name=added["name"],
        created_at=added["created_at"],
        last_used_at=added["last_used_at"],
    )
    return Json(passkey, status_code=201)


@me.delete(
    "/passkeys/{passkey_id}",
    status_code=204,
    responses=errors.responses(400, 404, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def remove_passkey(
    passkey_id: Annotated[UUID, Path(description="The passkey's id.")],
    body: schemas.PasswordIn,
    person: Person,
    request: Request,
    accounts: Service,
) -> Response:
    """Remove one of my passkeys, with the password."""
    context = from_request(request)
    await accounts.remove_passkey(context, person.user_id, passkey_id, body.password)
    return Response(status_code=204)


@auth.post(
    "/mfa",
    response_model=schemas.TokenPair,
    responses=errors.responses(400, 401, 403, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def second_step(body: schemas.SecondStep, request: Request, accounts: Service) -> Json:
    """The second step of a sign-in: the mfa_token that POST /auth/login answered with, and
    a code, a recovery code or a passkey's answer (see /auth/mfa/passkey-options): the token
    pair. Wrong ones are counted per account: after 5, each try waits longer (429)."""
    context = from_request(request, "anonymous")
    opened = await accounts.complete_sign_in(context, body.mfa_token, _proof(body))
    return Json(await accounts.token_pair(opened))


@auth.post(
    "/mfa/passkey-options",
    responses=errors.responses(400, 401, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def second_step_options(body: schemas.MfaTokenIn, accounts: Service) -> Json:
    """Options for navigator.credentials.get naming the account's passkeys, to answer in
    POST /auth/mfa's `credential`."""
    return Json(await accounts.second_factor_options(body.mfa_token))


@auth.post(
    "/passkey/options",
    response_model=schemas.WebAuthnOptions,
    responses=errors.responses(400, 413, 415, 422),
)
async def passkey_sign_in_options(request: Request, accounts: Service) -> Json:
    """Options for navigator.credentials.get, for signing in with a passkey alone (no
    address typed): send its answer, with the challenge_token, to POST /auth/passkey."""
    token, options = await accounts.passkey_sign_in_options(from_request(request, "anonymous"))
    return Json(schemas.WebAuthnOptions(challenge_token=token, options=options))


@auth.post(
    "/passkey",
    response_model=schemas.TokenPair,
    responses=errors.responses(400, 403, 413, 415, 422),
    dependencies=[JSON_BODY],
)
async def passkey_sign_in(body: schemas.PasskeySignIn, request: Request, accounts: Service) -> Json:
    """Sign in with a passkey: the token pair."""
    context = from_request(request, "anonymous")
    opened = await accounts.passkey_sign_in(context, body.challenge_token, body.credential)
    return Json(await accounts.token_pair(opened))
