"""Everyone's pages: sign up, verify, sign in and out, forgot and reset the password, and
my account (name, email, password, sessions, deletion). The emails' links land here.
Each form is one call on the accounts service, as the API's routes are."""

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from .. import errors
from ..accounts import schemas
from ..accounts.errors import SecondFactorRequiredError
from ..accounts.service import of
from ..context import from_request
from ..errors import AppError
from . import web

router = APIRouter(prefix="/account", route_class=web.PageRoute, include_in_schema=False)

Token = Annotated[str, Query(max_length=200)]
Failed = (AppError, RequestValidationError)


def next_page(target: str) -> str:
    # Only a path of this site: never an open redirect. Browsers read a backslash as a slash
    # and drop tabs and newlines, so "/<backslash>evil" and "/<tab>/evil" lead to //evil.
    local = target.startswith("/") and not target.startswith("//") and target.isprintable()
    return target if local and "\\" not in target else "/account"


# What a redirect after a change says: by code, so that a link cannot put words on the page.
DONE = {
    "renamed": "Your name is changed.",
    "email": "Check the new address's inbox: the address changes once it is verified.",
    "password": "Your password is changed; your other sessions are signed out.",
    "signed-out": "The session is signed out.",
    "disconnected": "The application is disconnected: its access ends now, and it must ask again.",
    "unlinked": "The provider no longer signs you in.",
    "totp-off": "The authenticator app is off; its recovery codes are gone.",
    "passkey-added": "The passkey is added: it signs you in, or confirms a sign-in.",
    "passkey-removed": "The passkey is removed.",
    "second-factor": (
        "Your account's operator scopes need a second factor: set one up below, then sign in "
        "again with it."
    ),
}


@router.get("")
async def home(request: Request, done: str = "") -> Response:
    me = await web.signed_in(request)
    return await home_page(request, me, notice=DONE.get(done, ""))


async def home_page(
    request: Request,
    me: web.Visitor,
    failed: AppError | RequestValidationError | None = None,
    **context: str,
) -> Response:
    accounts = of(request)
    status, error, headers = web.describe(failed) if failed else (200, "", {})
    response = web.render(
        request,
        "account/home.html",
        status,
        account=await accounts.me(me.user_id),
        sessions=await accounts.sessions(me.user_id),
        mfa=await accounts.second_factor_status(me.user_id),
        apps=await accounts.connected_apps(me.user_id),
        identities=labelled(request, await accounts.identities(me.user_id)),
        error=error,
        **context,
    )
    response.headers.update(headers)
    return response


@router.get("/sign-in")
async def sign_in_page(
    request: Request, next: str = "/account", email: Annotated[str, Query(max_length=254)] = ""
) -> Response:
    # email: an application's login_hint, filled in.
    return web.render(request, "account/sign-in.html", next=next_page(next), email=email)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    data = await web.form(request, anonymous=True)
    target = next_page(str(data.get("next", "")))
    try:
        body = web.parse(schemas.SignInForm, data)
        opened = await of(request).sign_in(
            from_request(request, "anonymous"),
            email=body.email,
            password=body.password,
            replacing=web.cookie_session(request),  # a browser has one session at a time
        )
    except SecondFactorRequiredError as asked:
        return second_step_page(request, asked, target)
    except Failed as exc:
        email = str(data.get("email", ""))
        return web.again(request, "account/sign-in.html", exc, next=target, email=email)
    response = web.redirect(request, target)
    web.remember(request, response, opened.session_id)
    return response


def second_step_page(
    request: Request, asked: SecondFactorRequiredError, target: str, **context: Any
) -> Response:
    """The page that asks for the second factor of a sign-in whose password was right."""
    return web.render(
        request,
        "account/second-factor.html",
        mfa_token=asked.mfa_token,
        methods=asked.methods,
        next=target,
        **context,
    )


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await web.form(request)
    me = await web.visitor(request)
    if me is not None:
        await of(request).end_session(from_request(request), me.user_id, me.session_id)
    response = web.redirect(request, "/account/sign-in")
    web.forget(response)
    return response


@router.get("/sign-up")
async def sign_up_page(request: Request) -> Response:
    return web.render(request, "account/sign-up.html")


@router.post("/sign-up")
async def sign_up(request: Request, answer: BackgroundTasks) -> Response:
    data = await web.form(request, anonymous=True)
    try:
        body = web.parse(schemas.Register, data)
        await of(request).register(
            from_request(request, "anonymous", answer),
            email=body.email,
            password=body.password,
            name=body.name,
        )
    except Failed as exc:
        return web.again(
            request, "account/sign-up.html", exc, email=data.get("email"), name=data.get("name")
        )
    return web.render(request, "account/check-inbox.html", email=body.email)


@router.get("/verify")
async def verify_page(request: Request, token: Token = "") -> Response:
    # A button, not an automatic POST: mail scanners that open links must not use them up.
    return web.render(request, "account/verify.html", token=token)


@router.post("/verify")
async def verify(request: Request) -> Response:
    data = await web.form(request, anonymous=True)
    try:
        body = web.parse(schemas.TokenIn, data)
        await of(request).verify(from_request(request, "anonymous"), body.token)
    except Failed as exc:
        return web.again(request, "account/verify.html", exc, token=data.get("token"))
    return web.render(request, "account/verified.html")


@router.get("/forgot-password")
async def forgot_page(request: Request) -> Response:
    return web.render(request, "account/forgot.html")


@router.post("/forgot-password")
async def forgot(request: Request, answer: BackgroundTasks) -> Response:
    data = await web.form(request, anonymous=True)
    try:
        body = web.parse(schemas.EmailIn, data)
        await of(request).forgot(from_request(request, "anonymous", answer), body.email)
    except Failed as exc:
        return web.again(request, "account/forgot.html", exc, email=data.get("email"))
    return web.render(request, "account/check-inbox.html", email=body.email, reset=True)


@router.get("/reset-password")
async def reset_page(request: Request, token: Token = "") -> Response:
    return web.render(request, "account/reset.html", token=token)


@router.post("/reset-password")
async def reset(request: Request) -> Response:
    data = await web.form(request, anonymous=True)
    try:
        body = web.parse(schemas.ResetPassword, data)
        await of(request).reset(from_request(request, "anonymous"), body.token, body.password)
    except Failed as exc:
        return web.again(request, "account/reset.html", exc, token=data.get("token"))
    return web.redirect(request, "/account/sign-in?reset=1")


@router.post("/name")
async def rename(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(schemas.Rename, data)
    except Failed as exc:
        return await home_page(request, me, exc)
    await of(request).rename_me(from_request(request), me.user_id, body.name)
    return web.redirect(request, "/account?done=renamed")


@router.post("/email")
async def change_email(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(schemas.ChangeEmail, data)
        await of(request).change_email(
            from_request(request), me.user_id, body.current_password, body.email
        )
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.redirect(request, "/account?done=email")


@router.post("/password")
async def change_password(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(schemas.ChangePassword, data)
        await of(request).change_password(
            from_request(request),
            me.user_id,
            me.session_id,
            body.current_password,
            body.new_password,
        )
    except Failed as exc:
        return await home_page(request, me, exc)
    return web.redirect(request, "/account?done=password")


def labelled(request: Request, identities: list[Any]) -> list[dict[str, Any]]:
    """Identities with their provider's label (its name, once it is no longer configured)."""
    configured = getattr(request.app.state, "upstream", {})
    return [
        {
            **identity,
            "label": configured[identity["provider"]].settings.label
            if identity["provider"] in configured
            else identity["provider"],
        }
        for identity in identities
    ]


@router.post("/identities/unlink")
async def unlink(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    provider, subject = str(data.get("provider", "")), str(data.get("subject", ""))
    try:
        found = await of(request).unlink(from_request(request), me.user_id, provider, subject)
    except AppError as exc:
        return await home_page(request, me, exc)
    if not found:
        raise errors.NotFoundError("No such identity is linked to your account.")
    return web.redirect(request, "/account?done=unlinked#identities")


@router.post("/apps/{client_id}/disconnect")
async def disconnect(request: Request, client_id: Annotated[str, Path(max_length=100)]) -> Response:
    me = await web.signed_in(request)
    await web.form(request)
    if not await of(request).disconnect(from_request(request), me.user_id, client_id):
        raise errors.NotFoundError("No such application is connected to your account.")
    return web.redirect(request, "/account?done=disconnected#apps")


@router.post("/sessions/{session_id}/end")
async def end_session(request: Request, session_id: Annotated[UUID, Path()]) -> Response:
    me = await web.signed_in(request)
    await web.form(request)
    if not await of(request).end_session(from_request(request), me.user_id, session_id):
        raise errors.NotFoundError(f"You have no live session {session_id}.")
    if session_id == me.session_id:
        response = web.redirect(request, "/account/sign-in")
        web.forget(response)
        return response
    return web.redirect(request, "/account?done=signed-out")


@router.post("/delete")
async def delete(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        if data.get("confirm") != "delete":
            raise web.InvalidFormError("Tick the box to confirm that the account goes for good.")
        body = web.parse(schemas.ConfirmPassword, data)
        await of(request).delete_me(from_request(request), me.user_id, body.current_password)
    except Failed as exc:
        return await home_page(request, me, exc)
    response = web.render(request, "account/deleted.html")
    web.forget(response)
    return response
