from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, StringConstraints
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12

from ..schemas import InputModel, PrintableStr

Name = Annotated[PrintableStr, StringConstraints(min_length=1, max_length=255)]
Search = Annotated[PrintableStr, StringConstraints(min_length=1, max_length=100)]
# By id or by creation time; a leading "-" for newest first.
Sort = Literal["id", "-id", "created", "-created"]


class UserCreate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "alice"}]})

    name: Name


class UserUpdate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Alice Liddell"}]})

    name: Name


# What the API answers. Plain dicts, filled from rows the database has typed already: they are
# encoded as they are (http.Json), while models would be validated once more per row.


class UserRead(TypedDict):
    id: int
    nickname: str


class UserView(TypedDict):
    """A user as admins read it: with the email of its account, if it has one."""

    id: int
    nickname: str
    email: str | None
    email_verified: bool
    created_at: datetime


class UserDeleted(TypedDict):
    id: int


class UserPage(TypedDict):
    items: list[UserView]
    next_cursor: int | str | None  # an id when sorted by id, else an opaque string
