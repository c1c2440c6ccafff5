"""The pages' plumbing: templates, the signed-in browser (a signed cookie naming one of the
account's sessions), a CSRF token on every form, security headers, and errors as pages.

A page handler is as thin as a router: parse, authorize, call the service, render."""

import secrets
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from uuid import UUID

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from ..accounts.service import of
from ..auth.guard import Principal
from ..config import get_settings
from ..crypto import Cipher
from ..database import UNAVAILABLE
from ..errors import AppError, InvalidInputError
from ..http import PAGE_HEADERS

SESSION_COOKIE = "user_service_session"
CSRF_COOKIE = "user_service_csrf"
CSRF_FIELD = "csrf"

templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))
# How a session was signed in to, in words (its amr, RFC 8176).
_FACTORS = {"pwd": "password", "otp": "code", "hwk": "passkey", "swk": "passkey"}
templates.env.filters["signed_in_with"] = lambda amr: " + ".join(
    _FACTORS.get(value, value.removeprefix("fed:")) for value in amr if value != "mfa"
)


@dataclass(frozen=True, slots=True)
class Visitor:
    """The person signed in in this browser."""

    user_id: int
    session_id: UUID
    email: str
    nickname: str
    scopes: frozenset[str]
    # The account's scopes wait for a sign-in with two factors (AUTH_OPERATOR_MFA).
    needs_second_factor: bool = False
    signed_in_at: datetime | None = None
    amr: tuple[str, ...] = ()


class SignInRequiredError(Exception):
    """The page is for a signed-in person; nobody is."""


class SecondFactorNeededError(Exception):
    """The page needs scopes that wait for a sign-in with two factors."""


class ForbiddenPageError(AppError):
    status_code = HTTPStatus.FORBIDDEN


class CsrfError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    message = (
        "This form did not come from this site (or it is too old): reload the page and "
        "send it again."
    )


class InvalidFormError(AppError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], data: FormData) -> M:
    """The form's fields as `model` (one of the API's own input models), or a 422 naming
    what to correct."""
    fields = {name: data.get(name, "") for name in model.model_fields}
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise InvalidFormError(problems(exc.errors())) from None


def problems(errors: Sequence[Any]) -> str:
    return "; ".join(
        f"{str(error['loc'][-1]).replace('_', ' ').capitalize()}: "
        f"{str(error['msg']).removeprefix('Value error, ')}"
        for error in errors
    )


def describe(exc: AppError | RequestValidationError) -> tuple[int, str, dict[str, str]]:
    """What went wrong, to show on the page: status, message, headers."""
    if isinstance(exc, RequestValidationError):
        return 422, problems(exc.errors()), {}
    if isinstance(exc, InvalidInputError):
        return 422, problems(exc.errors), {}
    return exc.status_code, exc.detail, exc.headers or {}


def again(
    request: Request, template: str, exc: AppError | RequestValidationError, **context: Any
) -> Response:
    """`template` once more, with what went wrong."""
    status, message, headers = describe(exc)
    response = render(request, template, status, error=message, **context)
    response.headers.update(headers)
    return response


def _cipher(request: Request) -> Cipher:
    cipher: Cipher = request.app.state.cipher
    return cipher


def _secure() -> bool:
    return get_settings().link_base.startswith("https://")


def cookie_session(request: Request) -> UUID | None:
    """The session this browser's cookie names, live or not (the signature is ours)."""
    signed = request.cookies.get(_cookie(SESSION_COOKIE))
    session_id = _cipher(request).unsign("session", signed) if signed else None
    return UUID(session_id) if session_id else None


async def visitor(request: Request) -> Visitor | None:
    """Who is signed in in this browser, if anyone (their session live, account enabled)."""
    if not hasattr(request.state, "visitor"):
        request.state.visitor = None
        session_id = cookie_session(request)
        if session_id:
            accounts = of(request)
            row = await accounts.visitor(session_id)
            if row is not None:
                scopes, needs = accounts.scopes_held(frozenset(row["scopes"]), row["amr"])
                me = Visitor(
                    row["user_id"],
                    row["session_id"],
                    row["email"],
                    row["nickname"],
                    scopes,
                    needs,
                    row["signed_in_at"],
                    tuple(row["amr"]),
                )
                request.state.visitor = me
                # The access log names who asked, as for API calls; what they do is theirs.
                request.state.principal = Principal(
                    f"user:{me.user_id}", me.scopes, None, me.user_id, me.session_id
                )
    found: Visitor | None = request.state.visitor
    return found


async def signed_in(request: Request) -> Visitor:
    """The signed-in visitor; anyone else is sent to the sign-in page."""
    found = await visitor(request)
    if found is None:
        raise SignInRequiredError
    return found


async def operator(request: Request, scope: str) -> Visitor:
    """The signed-in visitor, who must hold `scope`."""
    found = await signed_in(request)
    if scope not in found.scopes:
        if found.needs_second_factor:
            raise SecondFactorNeededError
        raise ForbiddenPageError(f"Your account does not have the {scope} scope.")
    return found


def _cookie(name: str) -> str:
    # Under https, the __Host- prefix: the browser keeps such a cookie only if it is Secure,
    # for the whole site (Path=/) and for this host alone (no Domain), so a sibling
    # subdomain cannot plant it.
    return f"__Host-{name}" if _secure() else name


def _nonce(request: Request) -> str:
    """This browser's anonymous CSRF secret: the cookie's, or one made now (set with the
    answer)."""
    nonce = request.cookies.get(_cookie(CSRF_COOKIE)) or getattr(request.state, "new_csrf", None)
    if nonce is None:
        nonce = request.state.new_csrf = secrets.token_urlsafe(32)
    return nonce


def _csrf(request: Request) -> str:
    """The CSRF token of this browser's forms: bound to its session (a MAC of the session
    id under the secret key, which nobody makes without both), or before sign-in to its
    anonymous secret, which serves only the forms of people not signed in."""
    session_id = cookie_session(request)
    if session_id is not None:
        return _cipher(request).mac("csrf", str(session_id))
    return _cipher(request).mac("csrf-anonymous", _nonce(request))


async def form(request: Request, *, anonymous: bool = False) -> FormData:
    """The posted form, once its CSRF token is this browser's: bound to its session, or,
    for an `anonymous` form (sign-in, sign-up, verify, forgot, reset), to its anonymous
    secret."""
    data = await request.form()
    cipher = _cipher(request)
    expected = []
    session_id = cookie_session(request)
    if session_id is not None:
        expected.append(cipher.mac("csrf", str(session_id)))
    nonce = request.cookies.get(_cookie(CSRF_COOKIE))
    if anonymous and nonce:
        expected.append(cipher.mac("csrf-anonymous", nonce))
    sent = data.get(CSRF_FIELD)
    if not (isinstance(sent, str) and any(secrets.compare_digest(sent, e) for e in expected)):
        raise CsrfError
    return data


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    response: Response = templates.TemplateResponse(
        request,
        template,
        {
            "visitor": getattr(request.state, "visitor", None),
            "csrf": _csrf(request),
            "signin_providers": _signin_providers(request),
            **context,
        },
        status_code=status_code,
    )
    return _finish(request, response)


def _signin_providers(request: Request) -> list[dict[str, str]]:
    """The companies' identity providers a person may sign in through (upstream/)."""
    return [
        {"label": upstream.settings.label, "start": f"/auth/providers/{name}/start"}
        for name, upstream in getattr(request.app.state, "upstream", {}).items()
    ]


def redirect(request: Request, url: str) -> Response:
    """See other: after a form, the browser gets the next page (no resubmission)."""
    return _finish(request, RedirectResponse(url, status_code=303))


def _finish(request: Request, response: Response) -> Response:
    response.headers.update(PAGE_HEADERS)
    new_csrf = getattr(request.state, "new_csrf", None)
    if new_csrf:
        _set_nonce(response, new_csrf)
    return response


def _set_nonce(response: Response, nonce: str) -> None:
    response.set_cookie(
        _cookie(CSRF_COOKIE), nonce, httponly=True, samesite="strict", secure=_secure(), path="/"
    )


def remember(request: Request, response: Response, session_id: UUID) -> None:
    """Sign this browser in to `session_id`: its forms then need that session's token, and
    its anonymous secret is a new one."""
    response.set_cookie(
        _cookie(SESSION_COOKIE),
        _cipher(request).sign("session", str(session_id)),
        max_age=int(get_settings().auth_refresh_ttl.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(),
        path="/",
    )
    _set_nonce(response, secrets.token_urlsafe(32))


def keep(request: Request, response: Response, name: str, value: str, seconds: int) -> None:
    """A short-lived cookie of this browser's, signed, for this site alone (as the session's:
    SameSite=Lax, so that it comes back with another site's redirect to us)."""
    response.set_cookie(
        _cookie(name),
        _cipher(request).sign(name, value),
        max_age=seconds,
        httponly=True,
        samesite="lax",
        secure=_secure(),
        path="/",
    )


def kept(request: Request, name: str) -> str | None:
    """The value `keep` gave this browser, if its signature is ours."""
    signed = request.cookies.get(_cookie(name))
    return _cipher(request).unsign(name, signed) if signed else None


def drop(response: Response, name: str) -> None:
    response.delete_cookie(_cookie(name), path="/", secure=_secure(), httponly=True)


def forget(response: Response) -> None:
    """Sign this browser out, with a new anonymous secret: no token from before serves."""
    response.delete_cookie(_cookie(SESSION_COOKIE), path="/", secure=_secure(), httponly=True)
    _set_nonce(response, secrets.token_urlsafe(32))


class PageRoute(APIRoute):
    """A page's errors are pages too: sign-in when signed out, the message otherwise (an
    htmx request gets the message alone, for its target)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except SecondFactorNeededError:
                return redirect(request, "/account?done=second-factor#two-factor")
            except SignInRequiredError:
                target = quote(
                    request.url.path + (f"?{request.url.query}" if request.url.query else "")
                )
                return redirect(request, f"/account/sign-in?next={target}")
            except InvalidInputError as exc:
                return _error(request, 422, f"Please correct: {problems(exc.errors)}")
            except AppError as exc:
                return _error(request, exc.status_code, exc.detail, exc.headers)
            except RequestValidationError as exc:
                return _error(request, 422, f"Please correct: {problems(exc.errors())}")
            except HTTPException as exc:
                return _error(request, exc.status_code, str(exc.detail))
            except UNAVAILABLE:
                return _error(request, 503, "The database is unavailable; try again shortly.")

        return page


def _error(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    template = "fragment-error.html" if request.headers.get("hx-request") else "error.html"
    response = render(request, template, status, status=status, message=message)
    response.headers.update(headers or {})
    return response
