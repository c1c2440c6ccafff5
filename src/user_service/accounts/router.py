"""The accounts API: each route translates HTTP to one call on the accounts service and its
answer back."""

from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    Form,
    Path,
    Request,
    Response,
    Security,
)
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowPassword, OAuthFlows
from fastapi.security.base import SecurityBase
from pydantic import StringConstraints

from .. import errors
from ..addresses import Login
from ..auth.guard import Principal
from ..context import from_request
from ..http import JSON_BODY, Json
from . import schemas
from .errors import NotAPersonError
from .schemas import Password
from .service import Service


class _Person(SecurityBase):
    """A signed-in person's access token (from /auth/login); Swagger UI's Authorize button
    gets one with the password flow."""

    def __init__(self) -> None:
        self.scheme_name = "account"
        self.model = OAuth2Model(
            flows=OAuthFlows(password=OAuthFlowPassword(tokenUrl="/auth/login", scopes={})),
            description="Sign in with an account's email and password.",
        )

    async def __call__(self, request: Request) -> "SignedIn":
        principal: Principal = await request.app.state.auth.authenticate(request)
        request.state.principal = principal
        # An application's token acts for the person only through the scopes it was given,
        # never on the account itself.
        if principal.user_id is None or principal.session_id is None or principal.client_id:
            raise NotAPersonError
        return SignedIn(principal.user_id, principal.session_id)


@dataclass(frozen=True, slots=True)
class SignedIn:
    user_id: int
    session_id: UUID


Person = Annotated[SignedIn, Security(_Person())]

Bounded = StringConstraints(max_length=200)


class _PasswordGrant:
    """OAuth 2's password grant (RFC 6749 §4.3.2), `username` being the email address; as
    FastAPI's OAuth2PasswordRequestForm, with every field bounded (a 3,000-character
    username is a 422, not work for the database)."""

    def __init__(
        self,
        *,
        username: Annotated[Login, Form()],
        password: Annotated[Password, Form(json_schema_extra={"format": "password"})],
        grant_type: Annotated[str | None, Form(pattern="^password$")] = None,
        scope: Annotated[str, Bounded, Form()] = "",
        client_id: Annotated[str | None, Bounded, Form()] = None,
        client_secret: Annotated[
            str | None, Bounded, Form(json_schema_extra={"format": "password"})
        ] = None,
    ) -> None:
        self.username = username
        self.password = password


auth = APIRouter(prefix="/auth", tags=["accounts"], responses=errors.responses(429, 503))
me = APIRouter(
    prefix="/users/me", tags=["accounts"], responses=errors.responses(401, 403, 429, 503)
)
wellknown = APIRouter(tags=["accounts"])


@wellknown.get("/.well-known/jwks.json")
async def jwks(accounts: Service) -> Json:
    """The public keys that sign access tokens (RFC 7517), for services that verify them
    offline. Tokens name theirs in `kid`; a key stays here after rotation."""
    return Json(await accounts.signer.jwks())


def _accepted(detail: str) -> Json:
    return Json(schemas.Accepted(detail=detail), status_code=202)


@auth.post(
    "/register",
    status_code=202,
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 413, 415, 422),
)
async def register(
    body: schemas.Register, request: Request, accounts: Service, answer: BackgroundTasks
) -> Json:
    """Create an account; a verification email goes to the address. The answer is the same
    whether or not the address has an account already (its owner gets an email saying so)."""
    await accounts.register(
        from_request(request, "anonymous", answer),
        email=body.email,
        password=body.password,
        name=body.name,
    )
    return _accepted("Check your inbox: we sent a link to verify the address.")


@auth.post(
    "/verify",
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 409, 413, 415, 422),
)
async def verify(body: schemas.TokenIn, request: Request, accounts: Service) -> Json:
    """Verify an email address with the token from the emailed link (single use)."""
    await accounts.verify(from_request(request, "anonymous"), body.token)
    return Json(schemas.Accepted(detail="The email address is verified."))


@auth.post(
    "/verify/resend",
    status_code=202,
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 413, 415, 422),
)
async def resend(
    body: schemas.EmailIn, request: Request, accounts: Service, answer: BackgroundTasks
) -> Json:
    """Send the verification link again (to an unverified account, whether or not there is one:
    the answer is the same)."""
    await accounts.resend(from_request(request, "anonymous", answer), body.email)
    return _accepted("If the address has an unverified account, a new link is on its way.")


@auth.post(
    "/login",
    response_model=schemas.TokenPair,
    responses=errors.responses(400, 401, 403, 413, 422),
)
async def login(
    form: Annotated[_PasswordGrant, Depends()], request: Request, accounts: Service
) -> Json:
    """Sign in (OAuth2 password grant: `username` is the email address): an access token and
    a refresh token."""
    context = from_request(request, "anonymous")
    return Json(await accounts.log_in(context, email=form.username, password=form.password))


@auth.post(
    "/refresh",
    dependencies=[JSON_BODY],
    response_model=schemas.TokenPair,
    responses=errors.responses(400, 401, 413, 415, 422),
)
async def refresh(body: schemas.RefreshIn, request: Request, accounts: Service) -> Json:
    """A new token pair for a refresh token, which is then used up. Presenting a used one
    again ends its whole session."""
    return Json(await accounts.refresh(from_request(request, "anonymous"), body.refresh_token))


@auth.post("/logout", status_code=204, responses=errors.responses(401, 403))
async def logout(person: Person, request: Request, accounts: Service) -> Response:
    """End this session: its access and refresh tokens stop working."""
    await accounts.end_session(from_request(request), person.user_id, person.session_id)
    return Response(status_code=204)


@auth.get("/sessions", response_model=list[schemas.Session], responses=errors.responses(401, 403))
async def sessions(person: Person, accounts: Service) -> Json:
    """My signed-in sessions."""
    rows = await accounts.sessions(person.user_id)
    return Json(
        [
            schemas.Session(
                id=row["id"],
                created_at=row["created_at"],
                last_used_at=row["last_used_at"],
                client_address=row["client_address"],
                user_agent=row["user_agent"],
                current=row["id"] == person.session_id,
                amr=row["amr"],
            )
            for row in rows
        ]
    )


@auth.delete(
    "/sessions/{session_id}", status_code=204, responses=errors.responses(401, 403, 404, 422)
)
async def end_session(
    session_id: Annotated[UUID, Path(description="The session's id.")],
    person: Person,
    request: Request,
    accounts: Service,
) -> Response:
    """Sign out one of my sessions."""
    if not await accounts.end_session(from_request(request), person.user_id, session_id):
        raise errors.NotFoundError(f"You have no live session {session_id}.")
    return Response(status_code=204)


@auth.post(
    "/forgot-password",
    status_code=202,
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 413, 415, 422),
)
async def forgot_password(
    body: schemas.EmailIn, request: Request, accounts: Service, answer: BackgroundTasks
) -> Json:
    """Email a password-reset link, if the address has an account (the answer is the same)."""
    await accounts.forgot(from_request(request, "anonymous", answer), body.email)
    return _accepted("If the address has an account, a reset link is on its way.")


@auth.post(
    "/reset-password",
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 413, 415, 422),
)
async def reset_password(body: schemas.ResetPassword, request: Request, accounts: Service) -> Json:
    """Choose a new password with the emailed token: every session ends; sign in again."""
    await accounts.reset(from_request(request, "anonymous"), body.token, body.password)
    return Json(schemas.Accepted(detail="Your password is changed; sign in with it."))


async def _me(accounts: Service, user_id: int) -> Json:
    account = await accounts.me(user_id)
    if account is None:
        raise errors.NotFoundError("Your account no longer exists.")
    return Json(
        schemas.Me(
            id=account["user_id"],
            nickname=account["nickname"],
            email=account["email"],
            email_verified=account["email_verified_at"] is not None,
            created_at=account["created_at"],
        )
    )


@me.get("", response_model=schemas.Me, responses=errors.responses(404))
async def read_me(person: Person, accounts: Service) -> Json:
    """My account."""
    return await _me(accounts, person.user_id)


@me.patch(
    "",
    dependencies=[JSON_BODY],
    response_model=schemas.Me,
    responses=errors.responses(400, 404, 413, 415, 422),
)
async def rename_me(
    body: schemas.Rename, person: Person, request: Request, accounts: Service
) -> Json:
    """Change my name."""
    await accounts.rename_me(from_request(request), person.user_id, body.name)
    return await _me(accounts, person.user_id)


@me.post(
    "/password",
    status_code=204,
    dependencies=[JSON_BODY],
    responses=errors.responses(400, 413, 415, 422),
)
async def change_password(
    body: schemas.ChangePassword, person: Person, request: Request, accounts: Service
) -> Response:
    """Change my password; every other session ends."""
    await accounts.change_password(
        from_request(request),
        person.user_id,
        person.session_id,
        body.current_password,
        body.new_password,
    )
    return Response(status_code=204)


@me.post(
    "/email",
    status_code=202,
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 413, 415, 422),
)
async def change_email(
    body: schemas.ChangeEmail, person: Person, request: Request, accounts: Service
) -> Json:
    """Change my email address: it changes once the new address is verified."""
    await accounts.change_email(
        from_request(request), person.user_id, body.current_password, body.email
    )
    return _accepted("Check the new address's inbox: it changes once verified.")


@me.delete(
    "", status_code=204, dependencies=[JSON_BODY], responses=errors.responses(400, 413, 415, 422)
)
async def delete_me(
    body: schemas.ConfirmPassword, person: Person, request: Request, accounts: Service
) -> Response:
    """Delete my account, for good."""
    await accounts.delete_me(from_request(request), person.user_id, body.current_password)
    return Response(status_code=204)
