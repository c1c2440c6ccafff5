"""The webhooks API's bodies."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12

from ..schemas import InputModel, PrintableStr
from .events import TYPES
from .targets import MAX_LENGTH


def _known(name: str) -> str:
    if name not in TYPES:
        raise ValueError(f"unknown event type {name!r}; the types are {', '.join(TYPES)}")
    return name


Url = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LENGTH)]
EventType = Annotated[
    str, StringConstraints(max_length=100), AfterValidator(_known), Field(examples=["user.created"])
]
Events = Annotated[list[EventType], Field(min_length=1, max_length=len(TYPES))]
Description = Annotated[PrintableStr, StringConstraints(max_length=500)]

_EXAMPLE: dict[str, Any] = {
    "url": "https://billing.example.com/hooks/users",
    "events": ["user.created", "user.deleted"],
    "description": "Billing",
}


class WebhookCreate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [_EXAMPLE]})

    url: Url = Field(description="https, reaching a public address (WEBHOOK_ALLOWED_NETWORKS).")
    events: Events
    description: Description | Literal[""] = ""


class WebhookUpdate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"enabled": True}]})

    url: Url | None = None
    events: Events | None = None
    description: Description | Literal[""] | None = None
    enabled: bool | None = None


class Webhook(TypedDict):
    id: int
    url: str
    events: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None  # why delivery stopped, if it did (a 410 Gone)
    created_at: datetime


class WebhookCreated(TypedDict):
    id: int
    url: str
    events: list[str]
    description: str
    created_at: datetime
    secret: str  # shown this once


class WebhookSecret(TypedDict):
    id: int
    secret: str  # shown this once; the previous one signs too for 24 hours


class WebhookPage(TypedDict):
    items: list[Webhook]
    next_cursor: int | None


class Attempt(TypedDict):
    at: datetime
    status: int | None  # the receiver's HTTP status
    error: str | None  # or why there was none
    duration_ms: int


class Delivery(TypedDict):
    id: int
    event_id: str  # the webhook-id header
    type: str
    created_at: datetime  # when the change happened
    state: Literal["pending", "delivered", "failed"]
    next_attempt_at: datetime | None  # while pending
    attempts: list[Attempt]


class DeliveryPage(TypedDict):
    items: list[Delivery]
    next_cursor: int | None


class Retried(TypedDict):
    event_id: str
    state: Literal["pending"]
