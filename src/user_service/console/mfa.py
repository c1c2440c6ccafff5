"""Second factors on everyone's pages: the second step of signing in, signing in with a
passkey, and the account page's two-factor section (an authenticator app with a QR code drawn
here, recovery codes, passkeys). Each form is one call on the accounts service, as the API's
routes are; passkeys need the few lines of static/passkeys.js."""

import io
import json
import re
from typing import Annotated, Any
from uuid import UUID

import segno
from fastapi import APIRouter, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import StringConstraints
from starlette.datastructures import FormData

from ..accounts.errors import InvalidMfaTokenError, SecondFactorRequiredError
from ..accounts.mfa import Proof
from ..accounts.schemas import Code, Credential, Password, Token
from ..accounts.service import of
from ..accounts.signin import Opened
from ..context import from_request
from ..errors import AppError, problem
from ..schemas import InputModel
from ..users.schemas import Name
from . import web
from .account import home_page, next_page, second_step_page

router = APIRouter(prefix="/account", route_class=web.PageRoute, include_in_schema=False)

Failed = (AppError, RequestValidationError)
# A passkey's answer as the script puts it in the form: WebAuthn's JSON (a few KB).
CredentialText = Annotated[str, StringConstraints(min_length=2, max_length=16_000)]
# What a page's one "code" box may hold: an app's six digits, or a recovery code.
Factor = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9 -]{6,20}$")]


class PasswordForm(InputModel):
    password: Password


class CodeForm(InputModel):
    code: Code


class PasswordAndFactorForm(InputModel):
    password: Password
    factor: Factor


class NewPasskeyForm(InputModel):
    challenge_token: Token
    name: Name
    credential: CredentialText


def proof(factor: str, credential: str = "") -> Proof:
    """A code box's content as the factor it is: six digits are an app's code."""
    if credential:
        return Proof(credential=_credential(credential))
    if re.fullmatch(r"[0-9]{6}", factor):
        return Proof(code=factor)
    return Proof(recovery_code=factor)


def _credential(text: str) -> Credential:
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise web.InvalidFormError("The passkey's answer is not WebAuthn's JSON.")
    return parsed


def signed_in(request: Request, opened: Opened, target: str) -> Response:
    response = web.redirect(request, target)
    web.remember(request, response, opened.session_id)
    return response


async def _json(work: Any) -> Response:
    """For the passkeys script: the options as JSON, or a problem (not a page)."""
    try:
        return JSONResponse(await work)
    except AppError as exc:
        return problem(exc.status_code, exc.detail, exc.headers, exc.type)


# Signing in


@router.post("/second-factor")
async def second_step(request: Request) -> Response:
    data = await web.form(request, anonymous=True)
    token, target = str(data.get("mfa_token", "")), next_page(str(data.get("next", "")))
    try:
        opened = await of(request).complete_sign_in(
            from_request(request, "anonymous"), token, _proof(data)
        )
    except InvalidMfaTokenError as exc:
        return web.again(request, "account/sign-in.html", exc, next=target)
    except Failed as exc:
        # The same challenge again, saying what went wrong (while it lives).
        try:
            methods = await of(request).methods_of(token)
        except InvalidMfaTokenError as gone:
            return web.again(request, "account/sign-in.html", gone, next=target)
        status, message, headers = web.describe(exc)
        asked = SecondFactorRequiredError(token, methods)
        response = second_step_page(request, asked, target, error=message)
        response.status_code = status
        response.headers.update(headers)
        return response
    return signed_in(request, opened, target)


def _proof(data: FormData) -> Proof:
    code, recovery = str(data.get("code", "")), str(data.get("recovery_code", ""))
    credential = str(data.get("credential", ""))
    if credential:
        return proof("", credential)
    if not re.fullmatch(r"[0-9]{6}|[A-Za-z0-9 -]{10,20}", code or recovery):
        raise web.InvalidFormError("Enter the six digits of the app, or a recovery code.")
    return Proof(code=code) if code else Proof(recovery_code=recovery)


@router.post("/second-factor/passkey-options")
async def second_step_options(request: Request) -> Response:
    data = await web.form(request, anonymous=True)
    return await _json(of(request).second_factor_options(str(data.get("mfa_token", ""))))


@router.post("/passkey-options")
async def passkey_options(request: Request) -> Response:
    await web.form(request, anonymous=True)
    context = from_request(request, "anonymous")
    accounts = of(request)

    async def options() -> dict[str, Any]:
        token, found = await accounts.passkey_sign_in_options(
            context, replacing=web.cookie_session(request)
        )
        return {"challenge_token": token, "options": found}

    return await _json(options())


@router.post("/passkey")
async def passkey_sign_in(request: Request) -> Response:
    data = await web.form(request, anonymous=True)
    target = next_page(str(data.get("next", "")))
    try:
        opened = await of(request).passkey_sign_in(
            from_request(request, "anonymous"),
            str(data.get("challenge_token", "")),
            _credential(str(data.get("credential", ""))),
        )
    except Failed as exc:
        return web.again(request, "account/sign-in.html", exc, next=target)
    return signed_in(request, opened, target)


# The account page's two-factor section


@router.post("/mfa/totp")
async def start_totp(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(PasswordForm, data)
        secret, uri = await of(request).start_totp(from_request(request), me.user_id, body.password)
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.render(request, "account/totp.html", secret=secret, qr=_qr(uri))


def _qr(uri: str) -> str:
    """The otpauth URI as an SVG QR code, drawn here: the secret goes to no other service."""
    svg = io.BytesIO()
    segno.make(uri, error="m").save(svg, kind="svg", scale=5, light="#fff", xmldecl=False)
    return svg.getvalue().decode()


@router.post("/mfa/totp/confirm")
async def confirm_totp(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(CodeForm, data)
        codes = await of(request).confirm_totp(from_request(request), me.user_id, body.code)
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.render(request, "account/recovery-codes.html", codes=codes)


@router.post("/mfa/totp/off")
async def stop_totp(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(PasswordAndFactorForm, data)
        await of(request).stop_totp(
            from_request(request), me.user_id, body.password, proof(body.factor)
        )
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.redirect(request, "/account?done=totp-off#two-factor")


@router.post("/mfa/recovery-codes")
async def renew_recovery_codes(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(PasswordAndFactorForm, data)
        codes = await of(request).renew_recovery_codes(
            from_request(request), me.user_id, body.password, proof(body.factor)
        )
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.render(request, "account/recovery-codes.html", codes=codes)


@router.post("/mfa/passkey-options")
async def new_passkey_options(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    accounts = of(request)

    async def options() -> dict[str, Any]:
        body = web.parse(PasswordForm, data)
        token, found = await accounts.passkey_options(
            from_request(request), me.user_id, body.password
        )
        return {"challenge_token": token, "options": found}

    return await _json(options())


@router.post("/mfa/passkeys")
async def add_passkey(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(NewPasskeyForm, data)
        await of(request).add_passkey(
            from_request(request),
            me.user_id,
            body.challenge_token,
            body.name,
            _credential(body.credential),
        )
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.redirect(request, "/account?done=passkey-added#passkeys")


@router.post("/mfa/passkeys/{passkey_id}/remove")
async def remove_passkey(request: Request, passkey_id: Annotated[UUID, Path()]) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(PasswordForm, data)
        await of(request).remove_passkey(
            from_request(request), me.user_id, passkey_id, body.password
        )
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.redirect(request, "/account?done=passkey-removed#passkeys")
