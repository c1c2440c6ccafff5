from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from ..schemas import InputModel, PrintableStr

Name = Annotated[PrintableStr, StringConstraints(min_length=1, max_length=255)]


class UserCreate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "alice"}]})

    name: Name


class UserUpdate(InputModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "Alice Liddell"}]})

    name: Name


class UserRead(BaseModel):
    id: int
    nickname: str


class UserDeleted(BaseModel):
    id: int


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: int | None
