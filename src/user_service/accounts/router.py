from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, BackgroundTasks, Depends, Path, Request, Response, Security
from fastapi.openapi.models import OAuth2 as OAuth2Model
from fastapi.openapi.models import OAuthFlowPassword, OAuthFlows
from fastapi.security import OAuth2PasswordRequestForm
from fastapi.security.base import SecurityBase

from .. import detached, errors
from ..audit.repository import context
from ..auth.guard import Principal, UnauthenticatedError
from ..config import get_settings
from ..errors import AppError
from ..http import JSON_BODY, Json
from . import repository, schemas
from .keys import InvalidAccessTokenError, Signer
from .passwords import Hasher
from .service import Accounts


class NotAPersonError(AppError):
    status_code = HTTPStatus.FORBIDDEN
    type = "/problems/not-a-person"
    message = "Only a person signed in through /auth/login can do this."


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
        if principal.user_id is None or principal.session_id is None:
            raise NotAPersonError
        return SignedIn(principal.user_id, principal.session_id)


@dataclass(frozen=True, slots=True)
class SignedIn:
    user_id: int
    session_id: UUID


Person = Annotated[SignedIn, Security(_Person())]


def get_accounts(request: Request) -> Accounts:
    """The worker's Accounts, made on first use (it needs the lifespan's pool)."""
    state = request.app.state
    if not hasattr(state, "accounts"):
        settings = get_settings()
        access_ttl = int(settings.auth_access_ttl.total_seconds())
        state.accounts = Accounts(
            db=state.db,
            settings=settings,
            cipher=state.cipher,
            hasher=Hasher(settings),
            signer=Signer(state.db, state.cipher, settings.link_base, access_ttl),
            outbox=state.mail,
        )
    accounts: Accounts = state.accounts
    return accounts


Flows = Annotated[Accounts, Depends(get_accounts)]

ACCEPTED: dict[int | str, dict[str, Any]] = {202: {"description": "Accepted"}}
auth = APIRouter(prefix="/auth", tags=["accounts"], responses=errors.responses(429, 503))
me = APIRouter(
    prefix="/users/me", tags=["accounts"], responses=errors.responses(401, 403, 429, 503)
)


wellknown = APIRouter(tags=["accounts"])


@wellknown.get("/.well-known/jwks.json")
async def jwks(flows: Flows) -> Json:
    """The public keys that sign access tokens (RFC 7517), for services that verify them
    offline. Tokens name theirs in `kid`; a key stays here after rotation."""
    return Json(await flows.signer.jwks())


async def person(request: Request, token: str) -> Principal | None:
    """A signed-in person's access token, checked (the guard calls this at most once a
    second per token and worker); None when the token is not one of ours."""
    flows = get_accounts(request)
    if not flows.signer.ours(token):
        return None
    try:
        claims = await flows.signer.verify(token)
    except InvalidAccessTokenError as exc:
        raise UnauthenticatedError(str(exc)) from None
    user_id, session_id = int(claims["sub"]), UUID(claims["sid"])
    scopes = await repository.session_scopes(flows.db, session_id, user_id)
    if scopes is None:
        raise UnauthenticatedError("The session has ended; sign in again.")
    # A scope taken away stops working at once; a new one comes with the next token.
    granted = frozenset(str(claims.get("scope", "")).split()) & frozenset(scopes)
    return Principal(f"user:{user_id}", granted, float(claims["exp"]), user_id, session_id)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent", "")[:500] or None


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
    body: schemas.Register, request: Request, flows: Flows, answer: BackgroundTasks
) -> Json:
    """Create an account; a verification email goes to the address. The answer is the same
    whether or not the address has an account already (its owner gets an email saying so)."""
    await flows.limit_address("register", client_address(request))
    password_hash = await flows.new_password(body.password, email=body.email, name=body.name)
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
    return _accepted("Check your inbox: we sent a link to verify the address.")


@auth.post(
    "/verify",
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 409, 413, 415, 422),
)
async def verify(body: schemas.TokenIn, request: Request, flows: Flows) -> Json:
    """Verify an email address with the token from the emailed link (single use)."""
    await flows.limit_address("verify", client_address(request))
    await flows.verify(context(request, "anonymous"), body.token)
    return Json(schemas.Accepted(detail="The email address is verified."))


@auth.post(
    "/verify/resend",
    status_code=202,
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 413, 415, 422),
)
async def resend(
    body: schemas.EmailIn, request: Request, flows: Flows, answer: BackgroundTasks
) -> Json:
    """Send the verification link again (to an unverified account, whether or not there is one:
    the answer is the same)."""
    await flows.limit_address("verify", client_address(request))
    detached.after_answer(request, answer, flows.resend(body.email))
    return _accepted("If the address has an unverified account, a new link is on its way.")


@auth.post(
    "/login",
    response_model=schemas.TokenPair,
    responses=errors.responses(400, 401, 403, 413, 422),
)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request, flows: Flows
) -> Json:
    """Sign in (OAuth2 password grant: `username` is the email address): an access token and
    a refresh token."""
    await flows.limit_address("login", client_address(request))
    account, session_id = await flows.sign_in(
        context(request, "anonymous"),
        email=form.username,
        password=form.password,
        user_agent=user_agent(request),
    )
    return Json(await flows.first_pair(account, session_id))


@auth.post(
    "/refresh",
    dependencies=[JSON_BODY],
    response_model=schemas.TokenPair,
    responses=errors.responses(400, 401, 413, 415, 422),
)
async def refresh(body: schemas.RefreshIn, request: Request, flows: Flows) -> Json:
    """A new token pair for a refresh token, which is then used up. Presenting a used one
    again ends its whole session."""
    return Json(await flows.refresh(context(request, "anonymous"), body.refresh_token))


@auth.post("/logout", status_code=204, responses=errors.responses(401, 403))
async def logout(person: Person, request: Request, flows: Flows) -> Response:
    """End this session: its access and refresh tokens stop working."""
    await flows.end_session(context(request), person.user_id, person.session_id)
    return Response(status_code=204)


@auth.get("/sessions", response_model=list[schemas.Session], responses=errors.responses(401, 403))
async def sessions(person: Person, flows: Flows) -> Json:
    """My signed-in sessions."""
    rows = await repository.live_sessions(flows.db, person.user_id)
    return Json(
        [
            schemas.Session(
                id=row["id"],
                created_at=row["created_at"],
                last_used_at=row["last_used_at"],
                client_address=row["client_address"],
                user_agent=row["user_agent"],
                current=row["id"] == person.session_id,
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
    flows: Flows,
) -> Response:
    """Sign out one of my sessions."""
    if not await flows.end_session(context(request), person.user_id, session_id):
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
    body: schemas.EmailIn, request: Request, flows: Flows, answer: BackgroundTasks
) -> Json:
    """Email a password-reset link, if the address has an account (the answer is the same)."""
    await flows.limit_address("forgot", client_address(request))
    detached.after_answer(request, answer, flows.forgot(body.email))
    return _accepted("If the address has an account, a reset link is on its way.")


@auth.post(
    "/reset-password",
    dependencies=[JSON_BODY],
    response_model=schemas.Accepted,
    responses=errors.responses(400, 413, 415, 422),
)
async def reset_password(body: schemas.ResetPassword, request: Request, flows: Flows) -> Json:
    """Choose a new password with the emailed token: every session ends; sign in again."""
    await flows.limit_address("forgot", client_address(request))
    await flows.reset(context(request, "anonymous"), body.token, body.password)
    return Json(schemas.Accepted(detail="Your password is changed; sign in with it."))


async def _me(flows: Accounts, user_id: int) -> Json:
    account = await repository.by_id(flows.db, user_id)
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
async def read_me(person: Person, flows: Flows) -> Json:
    """My account."""
    return await _me(flows, person.user_id)


@me.patch(
    "",
    dependencies=[JSON_BODY],
    response_model=schemas.Me,
    responses=errors.responses(400, 404, 413, 415, 422),
)
async def rename_me(body: schemas.Rename, person: Person, flows: Flows) -> Json:
    """Change my name."""
    await repository.rename(flows.db, person.user_id, body.name)
    return await _me(flows, person.user_id)


@me.post(
    "/password",
    status_code=204,
    dependencies=[JSON_BODY],
    responses=errors.responses(400, 413, 415, 422),
)
async def change_password(
    body: schemas.ChangePassword, person: Person, request: Request, flows: Flows
) -> Response:
    """Change my password; every other session ends."""
    await flows.change_password(
        context(request),
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
    body: schemas.ChangeEmail, person: Person, request: Request, flows: Flows
) -> Json:
    """Change my email address: it changes once the new address is verified."""
    await flows.change_email(context(request), person.user_id, body.current_password, body.email)
    return _accepted("Check the new address's inbox: it changes once verified.")


@me.delete(
    "", status_code=204, dependencies=[JSON_BODY], responses=errors.responses(400, 413, 415, 422)
)
async def delete_me(
    body: schemas.ConfirmPassword, person: Person, request: Request, flows: Flows
) -> Response:
    """Delete my account, for good."""
    await flows.delete(context(request), person.user_id, body.current_password)
    return Response(status_code=204)
