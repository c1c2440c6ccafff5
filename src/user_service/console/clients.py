"""The console's Clients page: the applications that sign people in through this service
(the OpenID Provider's), registered, listed, given a new secret, deleted. Each form is one
call on the accounts service, as `user-service clients` and /oauth/register are."""

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from .. import errors
from ..accounts.provider import OIDC_SCOPES, OAuthError
from ..accounts.service import of
from ..auth.guard import SCOPES
from ..context import from_request
from . import web

router = APIRouter(prefix="/console/clients", route_class=web.PageRoute, include_in_schema=False)

MANAGE = "clients:write"
ClientId = Annotated[str, Path(max_length=100)]
DONE = {"deleted": "The client is deleted: its grants ended, its consents are forgotten."}


async def _page(request: Request, me: web.Visitor, error: str = "", **context: Any) -> Response:
    own = {scope: SCOPES[scope] for scope in sorted(me.scopes) if scope in SCOPES}
    return web.render(
        request,
        "console/clients.html",
        422 if error else 200,
        clients=await of(request).clients(),
        scopes={**OIDC_SCOPES, **own},
        error=error,
        **context,
    )


@router.get("")
async def clients(request: Request, done: str = "") -> Response:
    me = await web.operator(request, MANAGE)
    return await _page(request, me, notice=DONE.get(done, ""))


def _lines(value: object) -> list[str]:
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


@router.post("")
async def register(request: Request) -> Response:
    me = await web.operator(request, MANAGE)
    data = await web.form(request)
    metadata = {
        "client_name": str(data.get("name", "")).strip(),
        "redirect_uris": _lines(data.get("redirect_uris")),
        "post_logout_redirect_uris": _lines(data.get("post_logout_redirect_uris")),
        "grant_types": [str(g) for g in data.getlist("grant_types")],
        "scope": " ".join(str(s) for s in data.getlist("scopes")),
        "token_endpoint_auth_method": "none" if data.get("public") else "client_secret_basic",
    }
    try:
        client = await of(request).register_client(
            from_request(request), metadata, first_party=bool(data.get("first_party"))
        )
    except OAuthError as exc:
        return await _page(request, me, f"Cannot register it: {exc.description}.", form=data)
    # Shown this once (every answer is Cache-Control: no-store), kept nowhere.
    return web.render(request, "console/client-created.html", 201, client=client)


@router.post("/{client_id}/rotate-secret")
async def rotate_secret(request: Request, client_id: ClientId) -> Response:
    await web.operator(request, MANAGE)
    await web.form(request)
    secret = await of(request).rotate_client_secret(from_request(request), client_id)
    if secret is None:
        raise errors.NotFoundError("No confidential client has this id.")
    client = {"client_id": client_id, "client_secret": secret}
    return web.render(request, "console/client-created.html", 201, client=client, rotated=True)


@router.post("/{client_id}/delete")
async def delete(request: Request, client_id: ClientId) -> Response:
    await web.operator(request, MANAGE)
    await web.form(request)
    if not await of(request).delete_client(from_request(request), client_id):
        raise errors.NotFoundError("No client has this id.")
    return web.redirect(request, "/console/clients?done=deleted")
