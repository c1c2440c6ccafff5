"""Base schemas shared by every feature."""

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints

# C0 and C1 control characters (NUL included).
_CONTROL = r"\x00-\x1f\x7f-\x9f"
# ... and lone surrogates, which PostgreSQL cannot store as UTF-8 text either.
_UNSTORABLE = re.compile(f"[{_CONTROL}\\ud800-\\udfff]")
# The rule told to clients in the OpenAPI schema: no control character anywhere, at least
# one character that is not whitespace. (Lone surrogates are not Unicode text, which is all a
# schema describes.)
PRINTABLE_PATTERN = f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$"


class InputModel(BaseModel):
    """A request body: unknown fields are an error, so a client never sets `id` and the like."""

    model_config = ConfigDict(extra="forbid")


def _check_printable(value: str) -> str:
    if _UNSTORABLE.search(value):
        raise ValueError("must not contain control characters")
    if value.isspace():
        raise ValueError("must not be only whitespace")
    return value


# A `str` with no control characters and not only whitespace; its OpenAPI schema says so.
PrintableStr = Annotated[
    str,
    AfterValidator(_check_printable),
    Field(json_schema_extra={"pattern": PRINTABLE_PATTERN}),
]
