from typing import Annotated

from pydantic import ConfigDict, StringConstraints
from typing_extensions import TypedDict  # pydantic needs this one below Python 3.12

from ..schemas import InputModel, PrintableStr

Name = Annotated[PrintableStr, StringConstraints(min_length=1, max_length=255)]


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


class UserDeleted(TypedDict):
    id: int


class UserPage(TypedDict):
    items: list[UserView]
    next_cursor: int | None
