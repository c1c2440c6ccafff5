"""Everyone's pages: sign up, verify, sign in and out, forgot and reset the password, and
my account (name, email, password, sessions, deletion). The emails' links land here.
Each form goes through the same flows, throttles and audit events as the API."""

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from .. import detached
from ..accounts import repository as accounts
from ..accounts import schemas
from ..accounts.router import client_address, get_accounts, user_agent
from ..audit.repository import context
from ..errors import AppError
from . import web

router = APIRouter(prefix="/account", route_class=web.PageRoute, include_in_schema=False)

Token = Annotated[str, Query(max_length=200)]
Failed = (AppError, RequestValidationError)


def _next(target: str) -> str:
    # Only a path of this site: never an open redirect.
    return target if target.startswith("/") and not target.startswith("//") else "/account"


# What a redirect after a change says: by code, so that a link cannot put words on the page.
DONE = {
    "renamed": "Your name is changed.",
    "email": "Check the new address's inbox: the address changes once it is verified.",
    "password": "Your password is changed; your other sessions are signed out.",
    "signed-out": "The session is signed out.",
}


@router.get("")
async def home(request: Request, done: str = "") -> Response:
    me = await web.signed_in(request)
    return await _home(request, me, notice=DONE.get(done, ""))


async def _home(
    request: Request,
    me: web.Visitor,
    failed: AppError | RequestValidationError | None = None,
    **context: str,
) -> Response:
    flows = get_accounts(request)
    status, error, headers = web.describe(failed) if failed else (200, "", {})
    response = web.render(
        request,
        "account/home.html",
        status,
        account=await accounts.by_id(flows.db, me.user_id),
        sessions=await accounts.live_sessions(flows.db, me.user_id),
        error=error,
        **context,
    )
    response.headers.update(headers)
    return response


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str = "/account") -> Response:
    return web.render(request, "account/sign-in.html", next=_next(next))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    data = await web.form(request)
    flows = get_accounts(request)
    email, target = str(data.get("email", "")), _next(str(data.get("next", "")))
    try:
        await flows.limit_address("login", client_address(request))
        _, session_id = await flows.sign_in(
            context(request, "anonymous"),
            email=email,
            password=str(data.get("password", "")),
            user_agent=user_agent(request),
        )
    except Failed as exc:
        return web.again(request, "account/sign-in.html", exc, next=target, email=email)
    response = web.redirect(request, target)
    web.remember(request, response, session_id)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await web.form(request)
    me = await web.visitor(request)
    if me is not None:
        await get_accounts(request).end_session(context(request), me.user_id, me.session_id)
    response = web.redirect(request, "/account/sign-in")
    web.forget(response)
    return response


@router.get("/sign-up")
async def sign_up_page(request: Request) -> Response:
    return web.render(request, "account/sign-up.html")


@router.post("/sign-up")
async def sign_up(request: Request, answer: BackgroundTasks) -> Response:
    data = await web.form(request)
    flows = get_accounts(request)
    try:
        body = web.parse(schemas.Register, data)
        await flows.limit_address("register", client_address(request))
        password_hash = await flows.new_password(body.password, email=body.email, name=body.name)
    except Failed as exc:
        return web.again(
            request, "account/sign-up.html", exc, email=data.get("email"), name=data.get("name")
        )
    # As in the API: the rest after the answer, which is the same for a taken address.
    detached.after_answer(
        request,
        answer,
        flows.register(
            context(request, "anonymous"),
            email=body.email,
            password_hash=password_hash,
            name=body.name,
        ),
    )
    return web.render(request, "account/check-inbox.html", email=body.email)


@router.get("/verify")
async def verify_page(request: Request, token: Token = "") -> Response:
    # A button, not an automatic POST: mail scanners that open links must not use them up.
    return web.render(request, "account/verify.html", token=token)


@router.post("/verify")
async def verify(request: Request) -> Response:
    data = await web.form(request)
    flows = get_accounts(request)
    try:
        body = web.parse(schemas.TokenIn, data)
        await flows.limit_address("verify", client_address(request))
        await flows.verify(context(request, "anonymous"), body.token)
    except Failed as exc:
        return web.again(request, "account/verify.html", exc, token=data.get("token"))
    return web.render(request, "account/verified.html")


@router.get("/forgot-password")
async def forgot_page(request: Request) -> Response:
    return web.render(request, "account/forgot.html")


@router.post("/forgot-password")
async def forgot(request: Request, answer: BackgroundTasks) -> Response:
    data = await web.form(request)
    flows = get_accounts(request)
    try:
        body = web.parse(schemas.EmailIn, data)
        await flows.limit_address("forgot", client_address(request))
    except Failed as exc:
        return web.again(request, "account/forgot.html", exc, email=data.get("email"))
    detached.after_answer(request, answer, flows.forgot(body.email))
    return web.render(request, "account/check-inbox.html", email=body.email, reset=True)


@router.get("/reset-password")
async def reset_page(request: Request, token: Token = "") -> Response:
    return web.render(request, "account/reset.html", token=token)


@router.post("/reset-password")
async def reset(request: Request) -> Response:
    data = await web.form(request)
    flows = get_accounts(request)
    try:
        body = web.parse(schemas.ResetPassword, data)
        await flows.limit_address("forgot", client_address(request))
        await flows.reset(context(request, "anonymous"), body.token, body.password)
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
        return await _home(request, me, exc)
    await accounts.rename(get_accounts(request).db, me.user_id, body.name)
    return web.redirect(request, "/account?done=renamed")


@router.post("/email")
async def change_email(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(schemas.ChangeEmail, data)
        await get_accounts(request).change_email(
            context(request), me.user_id, body.current_password, body.email
        )
    except Failed as exc:
        return await _home(request, me, exc)
    return web.redirect(request, "/account?done=email")


@router.post("/password")
async def change_password(request: Request) -> Response:
    me = await web.signed_in(request)
    data = await web.form(request)
    try:
        body = web.parse(schemas.ChangePassword, data)
        await get_accounts(request).change_password(
            context(request), me.user_id, me.session_id, body.current_password, body.new_password
        )
    except Failed as exc:
        return await _home(request, me, exc)
    return web.redirect(request, "/account?done=password")


@router.post("/sessions/{session_id}/end")
async def end_session(request: Request, session_id: Annotated[UUID, Path()]) -> Response:
    me = await web.signed_in(request)
    await web.form(request)
    await get_accounts(request).end_session(context(request), me.user_id, session_id)
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
        await get_accounts(request).delete(context(request), me.user_id, body.current_password)
    except Failed as exc:
        return await _home(request, me, exc)
    response = web.render(request, "account/deleted.html")
    web.forget(response)
    return response
