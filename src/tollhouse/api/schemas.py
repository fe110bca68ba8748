"""What control-API requests take: the base of every request body, and the bounded types of
the values that need one.

A request body takes JSON values as they are: a boolean member only `true` or `false` (not `0`
or `"false"`), an integer member only a JSON integer (not `true`, `60.0` or `"60"`), a string
member only a string; a member the model does not name is refused. Each answers 422
`invalid-input` with the member's `loc`. Strings with a NUL or a lone surrogate never get
this far (`api.middleware.StringGuard`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
"""A `Timestamp` lies in `[EARLIEST, LATEST)`: a year short of the calendar's end, so that a
billing period or a query window from it is still a date (beyond it Python's arithmetic, and
the stores, overflow)."""
MAX_ROW_ID = 2**63 - 1
"""The largest integer id (a BIGINT of either store); query parameters naming one are bounded
by it."""


class RequestBody(BaseModel):
    """Strict (no coercion between JSON types) and closed (`extra="forbid"`). Attribute
    docstrings are the members' descriptions in the OpenAPI document (and the SDK's)."""

    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


class ResponseBody(BaseModel):
    """The base of every control-API answer model: attribute docstrings are the members'
    descriptions in the OpenAPI document, and so in the SDK's models written from it."""

    model_config = ConfigDict(use_attribute_docstrings=True)


def _in_range(moment: datetime) -> datetime:
    try:
        utc: datetime | None = moment.astimezone(UTC)
    except OverflowError:  # the offset takes it past the calendar's first or last day
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"must be from {EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} (UTC)")
    return moment


Timestamp = Annotated[AwareDatetime, Field(strict=False), AfterValidator(_in_range)]
"""A moment: an RFC 3339 string with its UTC offset (`2026-03-15T12:00:00Z`), or Unix seconds,
within `[EARLIEST, LATEST)`. JSON has no time type, so this member alone is parsed from a
string; one without an offset is refused (422), as it names no moment."""
