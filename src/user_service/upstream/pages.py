"""The upstream sign-in's routes: the providers' list for applications (API), and the
browser's way out to a provider and back (pages). The state, nonce and PKCE verifier live
in a signed cookie of this browser's for ten minutes, once."""

import hmac
import json
import secrets
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel

from ..accounts.errors import SecondFactorRequiredError
from ..accounts.provider import s256
from ..accounts.service import of
from ..console import web
from ..console.account import next_page, second_step_page
from ..context import from_request
from ..errors import AppError, NotFoundError
from ..http import Json
from .client import RefusedError, UnreachableError, Upstream

api = APIRouter(prefix="/auth/providers", tags=["accounts"])
pages = APIRouter(prefix="/auth/providers", route_class=web.PageRoute, include_in_schema=False)

COOKIE = "user_service_upstream"
SECONDS = 600  # to sign in at the provider
Name = Annotated[str, Path(max_length=31)]


class SignInProvider(BaseModel):
    name: str
    label: str
    start_url: str  # where a browser goes to sign in through it


@api.get("", response_model=list[SignInProvider])
async def providers(request: Request) -> Json:
    """The companies' identity providers people may sign in through (SIGNIN_PROVIDERS)."""
    return Json([listed(request, upstream) for upstream in request.app.state.upstream.values()])


def listed(request: Request, upstream: Upstream) -> dict[str, str]:
    name = upstream.settings.name
    start = f"{of(request).settings.link_base}/auth/providers/{name}/start"
    return {"name": name, "label": upstream.settings.label, "start_url": start}


class ProviderDownError(AppError):
    status_code = HTTPStatus.SERVICE_UNAVAILABLE

    def __init__(self, label: str) -> None:
        super().__init__(
            f"{label} cannot be reached now. Try again shortly, or sign in with your password.",
            {"Retry-After": "30"},
        )


class CallbackRefusedError(AppError):
    status_code = HTTPStatus.BAD_REQUEST
    message = (
        "This sign-in cannot be completed (it is not this browser's, or it was used): start again."
    )


def _upstream(request: Request, name: str) -> Upstream:
    upstream: Upstream | None = request.app.state.upstream.get(name)
    if upstream is None:
        raise NotFoundError(f"No identity provider is named {name!r}.")
    return upstream


@pages.get("/{name}/start")
async def start(request: Request, name: Name, next: str = "/account") -> Response:
    """Off to the provider, with a new state, nonce and PKCE challenge."""
    upstream = _upstream(request, name)
    flow = {
        "provider": name,
        "state": secrets.token_urlsafe(32),
        "nonce": secrets.token_urlsafe(32),
        "verifier": secrets.token_urlsafe(48),
        "next": next_page(next),
    }
    try:
        url = await upstream.authorization_url(
            state=flow["state"], nonce=flow["nonce"], challenge=s256(flow["verifier"])
        )
    except UnreachableError:
        raise ProviderDownError(upstream.settings.label) from None
    response = web.redirect(request, url)
    web.keep(request, response, COOKIE, json.dumps(flow), SECONDS)
    return response


@pages.get("/{name}/callback")
async def callback(request: Request, name: Name) -> Response:
    """Back from the provider: the code, for this browser's sign-in only, once."""
    upstream = _upstream(request, name)
    accounts = of(request)
    context = from_request(request, "anonymous")
    try:
        claims, flow = await _verified(request, upstream)
    except CallbackRefusedError as exc:
        await accounts.refuse_callback(context, name, str(exc.__cause__ or "no such sign-in"))
        return _once(_error(request, 400, exc.detail))
    except UnreachableError:
        return _once(_error(request, 503, ProviderDownError(upstream.settings.label).detail))
    try:
        opened = await accounts.sign_in_upstream(
            context,
            provider=name,
            label=upstream.settings.label,
            claims=claims,
            replacing=web.cookie_session(request),
        )
    except SecondFactorRequiredError as asked:
        return _once(second_step_page(request, asked, flow["next"]))
    except AppError as exc:
        return _once(_error(request, exc.status_code, exc.detail))
    response = web.redirect(request, flow["next"])
    web.remember(request, response, opened.session_id)
    return _once(response)


async def _verified(request: Request, upstream: Upstream) -> tuple[dict[str, Any], Any]:
    """The ID token's claims, once the callback is this browser's sign-in's: its state, the
    issuer (RFC 9207), then the code exchanged and the token verified."""
    saved = web.kept(request, COOKIE)
    flow = json.loads(saved) if saved else None
    params = request.query_params
    state = params.get("state", "")
    if not (
        isinstance(flow, dict)
        and flow.get("provider") == upstream.settings.name
        and hmac.compare_digest(state.encode(), str(flow["state"]).encode())
    ):
        raise CallbackRefusedError from ValueError("state")
    issuer = params.get("iss")
    if (issuer is None and await upstream.expects_iss()) or (
        issuer is not None and issuer.rstrip("/") != upstream.settings.issuer
    ):
        raise CallbackRefusedError from ValueError("iss")
    if "error" in params or "code" not in params:
        error = str(params.get("error", "no code"))[:100]
        label = upstream.settings.label
        raise CallbackRefusedError(f"{label} did not sign you in ({error}).") from ValueError(error)
    try:
        claims = await upstream.exchange(
            code=params["code"], verifier=flow["verifier"], nonce=flow["nonce"]
        )
    except RefusedError as exc:
        raise CallbackRefusedError from exc
    return claims, flow


def _error(request: Request, status: int, message: str) -> Response:
    return web.render(request, "error.html", status, status=status, message=message)


def _once(response: Response) -> Response:
    # The flow's cookie serves one callback: a replayed one finds nothing.
    web.drop(response, COOKIE)
    return response
