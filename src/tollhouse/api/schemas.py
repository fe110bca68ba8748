"""The base of every control-API request body, and the one lax type it allows.

A request body takes JSON values as they are: a boolean member only `true` or `false` (not `0`
or `"false"`), an integer member only a JSON integer (not `true`, `60.0` or `"60"`), a string
member only a string; a member the model does not name is refused. Each answers 422
`invalid-input` with the member's `loc`. Strings with a NUL or a lone surrogate never get
this far (`api.middleware.StringGuard`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class RequestBody(BaseModel):
    """Strict (no coercion between JSON types) and closed (`extra="forbid"`)."""

    model_config = ConfigDict(extra="forbid", strict=True)


Timestamp = Annotated[AwareDatetime, Field(strict=False)]
"""A moment: an RFC 3339 string with its UTC offset (`2026-03-15T12:00:00Z`), or Unix seconds.
JSON has no time type, so this member alone is parsed from a string; one without an offset is
refused (422), as it names no moment."""
