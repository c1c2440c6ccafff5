"""Base schemas shared by every feature."""

import re

from pydantic import AfterValidator, BaseModel, ConfigDict

# C0 and C1 control characters (NUL included) and lone surrogates, which PostgreSQL
# cannot store as UTF-8 text.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class InputModel(BaseModel):
    """A request body: unknown fields are an error, so a client never sets `id` and the like."""

    model_config = ConfigDict(extra="forbid")


def _check_printable(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain control characters")
    if value.isspace():
        raise ValueError("must not be only whitespace")
    return value


# Annotate a `str` field with this to reject control characters and blank values.
Printable = AfterValidator(_check_printable)
