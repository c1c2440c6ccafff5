from typing import Annotated

from pydantic import BaseModel, StringConstraints

from ..schemas import InputModel, Printable

Name = Annotated[str, StringConstraints(min_length=1, max_length=255), Printable]


class UserCreate(InputModel):
    name: Name


class UserUpdate(InputModel):
    name: Name


class UserRead(BaseModel):
    id: int
    nickname: str


class UserDeleted(BaseModel):
    id: int


class UserPage(BaseModel):
    items: list[UserRead]
    next_cursor: int | None
