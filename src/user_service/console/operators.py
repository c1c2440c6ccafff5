"""The operators' console: an overview, the users (search, create or invite, change, disable,
sign out, delete), the API tokens and the audit log. Reading needs the account's users:read
scope, any change users:write, the audit log audit:read; each change is recorded with the
operator as its actor."""

import json
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, Field, StringConstraints

from .. import errors
from ..accounts.schemas import EmailIn
from ..accounts.service import of
from ..addresses import Email
from ..audit.kinds import KINDS, Kind
from ..auth.guard import SCOPES
from ..auth.tokens import TokenError
from ..context import from_request
from ..errors import AppError
from ..schemas import MAX_ID, InputModel, PrintableStr
from ..users.pagination import cursor_after, cursor_position
from ..users.schemas import Name, Search, Sort, UserUpdate
from . import charts, web
from .account import labelled

router = APIRouter(prefix="/console", route_class=web.PageRoute, include_in_schema=False)

READ, WRITE, AUDIT = "users:read", "users:write", "audit:read"
PAGE = 50
DAYS = 30
Failed = (AppError, RequestValidationError)

UserId = Annotated[int, Path(ge=1, le=MAX_ID)]
Id = Annotated[int, Field(ge=1, le=MAX_ID)]

# What a redirect after a change says: by code, so that a link cannot put words on the page.
DONE = {
    "created": "The user is created.",
    "invited": "The user is created; an invitation to choose a password is on its way.",
    "renamed": "The name is changed.",
    "email": "The address is changed; a link to verify it is on its way there.",
    "disabled": "The account is disabled and every session ended.",
    "enabled": "The account is enabled.",
    "signed-out": "The session is ended.",
    "all-signed-out": "Every session is ended.",
    "reset": "A link to choose a new password is on its way.",
    "second-factors-cleared": "The second factors are off; the person is told by email.",
    "deleted": "The user is deleted.",
    "revoked": "The token is revoked; it stops working within a second.",
}


def _blank_is_none(value: Any) -> Any:
    # An empty box in a form sends its field empty: that means "not given".
    return value if value != "" else None


class UsersQuery(BaseModel):
    q: Annotated[Search | None, BeforeValidator(_blank_is_none)] = None
    sort: Sort = "id"
    after: Annotated[
        Annotated[str, StringConstraints(max_length=40)] | None, BeforeValidator(_blank_is_none)
    ] = None
    done: str = ""


class AuditQuery(BaseModel):
    user_id: Annotated[Id | None, BeforeValidator(_blank_is_none)] = None
    kind: Annotated[Kind | None, BeforeValidator(_blank_is_none)] = None
    order: Literal["newest", "oldest"] = "newest"
    after: Annotated[Id | None, BeforeValidator(_blank_is_none)] = None


class NewUser(InputModel):
    name: Name
    email: Annotated[Email | None, BeforeValidator(_blank_is_none)] = None


TokenName = Annotated[PrintableStr, StringConstraints(min_length=1, max_length=100)]


class NewToken(InputModel):
    name: TokenName
    expires_in_days: Annotated[
        Annotated[int, Field(ge=1, le=3650)] | None, BeforeValidator(_blank_is_none)
    ] = None


class RevokeToken(InputModel):
    name: TokenName


# Overview


@router.get("")
async def overview(request: Request) -> Response:
    await web.operator(request, READ)
    accounts = of(request)
    days = await accounts.daily(DAYS)
    chart = charts.lines(
        f"Sign-ups and sign-ins per day over the last {DAYS} days (UTC)",
        [day["day"] for day in days],
        [
            charts.Series("signups", "Sign-ups", [day["signups"] for day in days]),
            charts.Series("signins", "Sign-ins", [day["signins"] for day in days]),
        ],
    )
    return web.render(
        request,
        "console/overview.html",
        counts=await accounts.overview(),
        days=days,
        chart=chart,
        total_signups=sum(day["signups"] for day in days),
        total_signins=sum(day["signins"] for day in days),
    )


# Users


@router.get("/users")
async def user_list(request: Request, params: Annotated[UsersQuery, Query()]) -> Response:
    await web.operator(request, READ)
    found, more = await of(request).users_page(
        sort=params.sort,
        after=None if params.after is None else cursor_position(params.sort, params.after),
        search=params.q,
        limit=PAGE,
    )
    # The search box asks htmx for the table alone. Boosted links and history restores send
    # HX-Request too, but not this target: they get the whole page.
    table_only = request.headers.get("hx-request") and request.headers.get("hx-target") == "users"
    return web.render(
        request,
        "console/_users.html" if table_only else "console/users.html",
        users=found,
        q=params.q or "",
        sort=params.sort,
        next_cursor=cursor_after(params.sort, found[-1]) if more else None,
        notice=DONE.get(params.done, ""),
    )


@router.get("/users/new")
async def new_user_page(request: Request) -> Response:
    await web.operator(request, WRITE)
    return web.render(request, "console/new-user.html")


@router.post("/users/new")
async def new_user(request: Request) -> Response:
    await web.operator(request, WRITE)
    data = await web.form(request)
    try:
        body = web.parse(NewUser, data)
        if body.email is None:
            user_id = (await of(request).create_user(from_request(request), name=body.name))["id"]
        else:
            user_id = await of(request).invite(
                from_request(request), name=body.name, email=body.email
            )
    except Failed as exc:
        return web.again(
            request, "console/new-user.html", exc, name=data.get("name"), email=data.get("email")
        )
    return web.redirect(
        request, f"/console/users/{user_id}?done={'created' if body.email is None else 'invited'}"
    )


@router.get("/users/{user_id}")
async def user_page(request: Request, user_id: UserId, done: str = "") -> Response:
    await web.operator(request, READ)
    return await _user(request, user_id, notice=DONE.get(done, ""))


async def _user(
    request: Request,
    user_id: int,
    failed: AppError | RequestValidationError | None = None,
    **context: str,
) -> Response:
    accounts = of(request)
    user = await accounts.user(user_id)
    sessions = await accounts.sessions(user_id) if user["has_account"] else []
    linked = await accounts.identities(user_id) if user["has_account"] else []
    status, error, headers = web.describe(failed) if failed else (200, "", {})
    response = web.render(
        request,
        "console/user.html",
        status,
        user=user,
        sessions=sessions,
        identities=labelled(request, linked),
        error=error,
        **context,
    )
    response.headers.update(headers)
    return response


def _done(user_id: int, what: str) -> str:
    return f"/console/users/{user_id}?done={what}"


@router.post("/users/{user_id}/name")
async def rename(request: Request, user_id: UserId) -> Response:
    await web.operator(request, WRITE)
    data = await web.form(request)
    try:
        body = web.parse(UserUpdate, data)
    except Failed as exc:
        return await _user(request, user_id, exc)
    await of(request).rename_user(from_request(request), user_id, body.name)
    return web.redirect(request, _done(user_id, "renamed"))


@router.post("/users/{user_id}/email")
async def change_email(request: Request, user_id: UserId) -> Response:
    await web.operator(request, WRITE)
    data = await web.form(request)
    try:
        body = web.parse(EmailIn, data)
        await of(request).replace_email(from_request(request), user_id, body.email)
    except Failed as exc:
        return await _user(request, user_id, exc)
    return web.redirect(request, _done(user_id, "email"))


class YourselfError(AppError):
    status_code = HTTPStatus.CONFLICT
    message = (
        "That is your own account: an operator cannot lock themselves out here. Another "
        "operator can, or delete it from My account."
    )


def _not_yourself(me: web.Visitor, user_id: int) -> None:
    if me.user_id == user_id:
        raise YourselfError


@router.post("/users/{user_id}/disable")
async def disable(request: Request, user_id: UserId) -> Response:
    me = await web.operator(request, WRITE)
    await web.form(request)
    _not_yourself(me, user_id)
    await of(request).set_disabled(from_request(request), user_id, True)
    return web.redirect(request, _done(user_id, "disabled"))


@router.post("/users/{user_id}/enable")
async def enable(request: Request, user_id: UserId) -> Response:
    await web.operator(request, WRITE)
    await web.form(request)
    await of(request).set_disabled(from_request(request), user_id, False)
    return web.redirect(request, _done(user_id, "enabled"))


@router.post("/users/{user_id}/sessions/{session_id}/end")
async def end_session(
    request: Request, user_id: UserId, session_id: Annotated[UUID, Path()]
) -> Response:
    await web.operator(request, WRITE)
    await web.form(request)
    await of(request).end_session(from_request(request), user_id, session_id)
    return web.redirect(request, _done(user_id, "signed-out"))


@router.post("/users/{user_id}/sessions/end")
async def end_sessions(request: Request, user_id: UserId) -> Response:
    await web.operator(request, WRITE)
    await web.form(request)
    await of(request).end_sessions(from_request(request), user_id)
    return web.redirect(request, _done(user_id, "all-signed-out"))


@router.post("/users/{user_id}/reset")
async def send_reset(request: Request, user_id: UserId) -> Response:
    await web.operator(request, WRITE)
    await web.form(request)
    await of(request).reset_for(from_request(request), user_id)
    return web.redirect(request, _done(user_id, "reset"))


@router.post("/users/{user_id}/second-factors/clear")
async def clear_second_factors(request: Request, user_id: UserId) -> Response:
    await web.operator(request, WRITE)
    await web.form(request)
    await of(request).clear_second_factors(from_request(request), user_id)
    return web.redirect(request, _done(user_id, "second-factors-cleared"))


@router.get("/users/{user_id}/delete")
async def delete_page(request: Request, user_id: UserId) -> Response:
    await web.operator(request, WRITE)
    user = await of(request).user(user_id)
    return web.render(request, "console/delete-user.html", user=user)


@router.post("/users/{user_id}/delete")
async def delete(request: Request, user_id: UserId) -> Response:
    me = await web.operator(request, WRITE)
    await web.form(request)
    _not_yourself(me, user_id)
    await of(request).delete_user(from_request(request), user_id)
    return web.redirect(request, "/console/users?done=deleted")


# API tokens


@router.get("/tokens")
async def token_list(request: Request, done: str = "") -> Response:
    me = await web.operator(request, READ)
    return await _tokens(request, me, notice=DONE.get(done, ""))


async def _tokens(
    request: Request,
    me: web.Visitor,
    failed: AppError | RequestValidationError | None = None,
    **context: Any,
) -> Response:
    status, error, headers = web.describe(failed) if failed else (200, "", {})
    response = web.render(
        request,
        "console/tokens.html",
        status,
        tokens=await of(request).api_tokens(),
        scopes={scope: SCOPES[scope] for scope in sorted(me.scopes) if scope in SCOPES},
        now=datetime.now(UTC),
        error=error,
        **context,
    )
    response.headers.update(headers)
    return response


@router.post("/tokens")
async def create_token(request: Request) -> Response:
    me = await web.operator(request, WRITE)
    data = await web.form(request)
    scopes = sorted({str(scope) for scope in data.getlist("scopes")})
    try:
        body = web.parse(NewToken, data)
        if not scopes:
            raise web.InvalidFormError("Choose at least one scope.")
        expires_in = timedelta(days=body.expires_in_days) if body.expires_in_days else None
        secret = await of(request).create_token(
            from_request(request), name=body.name, scopes=scopes, expires_in=expires_in
        )
    except Failed as exc:
        return await _tokens(request, me, exc, name=data.get("name", ""), chosen=scopes)
    except TokenError as exc:
        failed = web.InvalidFormError(f"Cannot create it: {exc}.")
        return await _tokens(request, me, failed, name=data.get("name", ""), chosen=scopes)
    # Shown this once (every answer is Cache-Control: no-store), kept nowhere.
    return web.render(
        request, "console/token-created.html", 201, name=body.name, scopes=scopes, secret=secret
    )


@router.post("/tokens/revoke")
async def revoke_token(request: Request) -> Response:
    await web.operator(request, WRITE)
    body = web.parse(RevokeToken, await web.form(request))
    if not await of(request).revoke_token(from_request(request), body.name):
        raise errors.NotFoundError(f"No live token is named {body.name!r}.")
    return web.redirect(request, "/console/tokens?done=revoked")


# The audit log


@router.get("/audit")
async def audit(request: Request, params: Annotated[AuditQuery, Query()]) -> Response:
    await web.operator(request, AUDIT)
    rows, more = await of(request).audit_events(
        after=params.after,
        limit=PAGE,
        user_id=params.user_id,
        kind=params.kind,
        newest_first=params.order == "newest",
    )
    return web.render(
        request,
        "console/audit.html",
        events=[{**row, "details": json.loads(row["details"])} for row in rows],
        kinds=KINDS,
        filters=params,
        next_after=rows[-1]["id"] if more else None,
    )
