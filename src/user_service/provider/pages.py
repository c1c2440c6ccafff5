"""The OpenID Provider's pages: the authorization endpoint (sign in on the account pages,
then consent), and RP-initiated logout. A person's browser comes here from an application
and goes back to it: to a registered address only, and never with a secret in the page."""

import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from ..accounts.provider import (
    OIDC_SCOPES,
    Authorization,
    RedirectedError,
    UnknownClientError,
)
from ..accounts.service import of
from ..auth.guard import SCOPES
from ..console import web
from ..context import from_request

pages = APIRouter(prefix="/oauth", route_class=web.PageRoute, include_in_schema=False)

# After the sign-in that prompt=login or max_age asked for: no earlier one will do.
_AFTER = "signed_in_after"


def _params(data: Any) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in data.multi_items():
        if name in params:
            raise web.InvalidFormError(f"{name} is sent more than once.")
        params[name] = str(value)
    return params


def _unknown(request: Request) -> Response:
    # Nowhere safe to send the error: the person sees it (RFC 6749 §4.1.2.1).
    return web.render(
        request,
        "error.html",
        400,
        status=400,
        message="The application, or the address it asked to return to, is not registered "
        "here: nothing was sent to it.",
    )


def back(request: Request, to: Authorization, **answer: str) -> Response:
    """Back to the application: the answer, its state and our issuer (RFC 9207)."""
    query = {**answer, **({"state": to.state} if to.state is not None else {})}
    query["iss"] = of(request).signer.issuer
    separator = "&" if "?" in to.redirect_uri else "?"
    return leave(request, f"{to.redirect_uri}{separator}{urlencode(query)}")


def leave(request: Request, url: str) -> Response:
    """Send the browser to another site. From one of our forms (or a redirect after one) a
    page that moves on: a browser holds a form's redirects to the pages' CSP (form-action
    'self'), and htmx (a boosted form) follows a redirect itself, where another site's
    answer is not for it to read; anywhere else a redirect."""
    if request.headers.get("hx-request"):
        response = web.render(request, "oauth/leave.html", url=url)
        response.headers["HX-Redirect"] = url
        return response
    if request.method == "GET" and request.headers.get("sec-fetch-site") != "same-origin":
        return RedirectResponse(url, status_code=303)
    return web.render(request, "oauth/leave.html", url=url)


async def _asked(request: Request, params: dict[str, str]) -> Authorization | Response:
    """The authorization request `params` make, or the answer to a bad one: a page when
    its client or redirect URI is unknown, else the error sent back to the client."""
    try:
        return await of(request).authorization(params)
    except UnknownClientError:
        return _unknown(request)
    except RedirectedError as exc:
        return back(request, exc.request, error=exc.error, error_description=exc.description)


@pages.get("/authorize")
async def authorize(request: Request) -> Response:
    """The authorization endpoint (code flow with PKCE S256)."""
    accounts = of(request)
    params = _params(request.query_params)
    asked = await _asked(request, params)
    if isinstance(asked, Response):
        return asked
    me = await web.visitor(request)
    after = params.get(_AFTER, "")
    # Never later than now: a link with a time to come would ask for sign-ins forever.
    since = min(int(after), int(time.time())) if after.isdigit() and len(after) < 12 else None
    stale = (
        me is not None
        and since is not None
        and me.signed_in_at is not None
        and me.signed_in_at.timestamp() < since
    )
    again = "login" in asked.prompt or stale
    if me is None or again or accounts.needs_sign_in(asked, me.signed_in_at):
        if "none" in asked.prompt:
            return back(request, asked, error="login_required", error_description="Sign-in needed.")
        # Signed in again (or at all), the browser comes back here, prompt=login done.
        prompt = " ".join(sorted(asked.prompt - {"login"}))
        retry = {**params, "prompt": prompt, _AFTER: str(int(time.time()))}
        if not prompt:
            del retry["prompt"]
        target = f"/oauth/authorize?{urlencode(retry)}"
        hint = {"email": asked.login_hint[:254]} if asked.login_hint else {}
        return web.redirect(request, f"/account/sign-in?{urlencode({'next': target, **hint})}")
    grant = await accounts.grantable(asked, me.user_id, me.scopes)
    if "consent" not in asked.prompt and await accounts.consented(asked, me.user_id, grant):
        return await _code(request, asked, me, grant, consent=False)
    if "none" in asked.prompt:
        return back(request, asked, error="consent_required", error_description="Consent needed.")
    signed = request.app.state.cipher.sign(_purpose(me), urlencode(params))
    described = {**OIDC_SCOPES, **SCOPES}
    return web.render(
        request,
        "oauth/consent.html",
        client=asked.client,
        scopes=[(scope, described.get(scope, scope)) for scope in grant],
        request_token=signed,
    )


def _purpose(me: web.Visitor) -> str:
    # A consent form serves the session it was shown to, for the request it shows.
    return f"oauth-consent:{me.session_id}"


async def _code(
    request: Request, asked: Authorization, me: web.Visitor, grant: list[str], *, consent: bool
) -> Response:
    assert me.signed_in_at is not None  # noqa: S101 (every session has its start)
    code = await of(request).issue_code(
        from_request(request),
        asked,
        user_id=me.user_id,
        browser_session=me.session_id,
        grant=grant,
        signed_in_at=me.signed_in_at,
        amr=list(me.amr),
        consent=consent,
    )
    return back(request, asked, code=code)


@pages.post("/authorize")
async def consent(request: Request) -> Response:
    """Allow or Deny, on the consent page."""
    data = await web.form(request)
    me = await web.signed_in(request)
    accounts = of(request)
    signed = request.app.state.cipher.unsign(_purpose(me), str(data.get("request", "")))
    if signed is None:
        raise web.CsrfError
    params = dict(parse_qsl(signed, keep_blank_values=True))  # a dict's, as signed
    asked = await _asked(request, params)
    if isinstance(asked, Response):
        return asked
    if data.get("decision") != "allow":
        await accounts.refused_consent(from_request(request), asked, me.user_id)
        return back(request, asked, error="access_denied", error_description="The person said no.")
    grant = await accounts.grantable(asked, me.user_id, me.scopes)
    return await _code(request, asked, me, grant, consent=True)


@pages.get("/logout")
@pages.post("/logout")
async def logout(request: Request) -> Response:
    """RP-initiated logout: with the application's id_token_hint, this browser's session ends
    at once; without one, the person confirms first. Then back to a registered
    post_logout_redirect_uri, with the state, or a page saying so."""
    accounts = of(request)
    posted = request.method == "POST"
    data = await web.form(request) if posted else request.query_params
    params = _params(data)
    hint = params.get("id_token_hint")
    claims = await accounts.logout_hint(hint) if hint else None
    if hint and claims is None:
        raise web.InvalidFormError("The id_token_hint is not an ID token of ours.")
    client_id = params.get("client_id") or (str(claims["aud"]) if claims else None)
    if claims is not None and client_id != claims["aud"]:
        raise web.InvalidFormError("client_id is not the ID token's audience.")
    client = await accounts.client(client_id) if client_id else None
    uri = params.get("post_logout_redirect_uri")
    if uri is not None and (client is None or uri not in client["post_logout_redirect_uris"]):
        raise web.InvalidFormError("post_logout_redirect_uri is not registered for the client.")
    me = await web.visitor(request)
    mine = claims is not None and (me is None or str(me.user_id) == claims["sub"])
    if me is not None and not mine and not (posted and params.get("confirm") == "yes"):
        keep = {
            k: v
            for k, v in params.items()
            if k in ("client_id", "post_logout_redirect_uri", "state")
        }
        return web.render(request, "oauth/logout.html", client=client, fields=keep)
    if me is not None:
        await accounts.end_session(from_request(request), me.user_id, me.session_id)
    if uri is not None:
        state = params.get("state")
        query = urlencode({"state": state}) if state is not None else ""
        target = f"{uri}{'&' if '?' in uri else '?'}{query}" if query else uri
        response = leave(request, target)
    else:
        response = web.render(request, "oauth/signed-out.html", client=client)
    web.forget(response)
    return response
