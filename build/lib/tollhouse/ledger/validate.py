"""Argument checks run before an operation is queued: a bad call writes nothing.

Each check raises `tollhouse.errors.InvalidInput` (422) whose `errors` lists `{loc, msg}`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

import orjson

from tollhouse.errors import InvalidInput
from tollhouse.ledger.models import GrantSource

MAX_MICROS = 10**17
"""Largest single amount accepted (1e11 currency units): keeps sums far from BIGINT overflow."""

MAX_KEY_LENGTH = 255
MAX_METADATA_BYTES = 4096
MAX_ID_LENGTH = 32

_CURRENCY = re.compile(r"[a-z]{3}")
_SOURCES = frozenset(s.value for s in GrantSource)


def _fail(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", errors=[{"loc": loc, "msg": msg}])


def amount(value: object, loc: str = "amount", *, allow_zero: bool = False) -> int:
    """An `int` of micros, > 0 (or >= 0 with `allow_zero`), at most `MAX_MICROS`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise _fail(loc, "must be an integer number of micros")
    if value < 0 or (value == 0 and not allow_zero):
        raise _fail(loc, "must be positive" if not allow_zero else "must not be negative")
    if value > MAX_MICROS:
        raise _fail(loc, f"must be at most {MAX_MICROS}")
    return value


def currency(value: object) -> str:
    """A lowercase ISO 4217 code such as `usd`."""
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise _fail("currency", "must be a lowercase ISO 4217 code such as 'usd'")
    return value


def identifier(value: object, loc: str) -> str:
    """A non-empty id of at most 32 characters (customer, hold, grant)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_LENGTH:
        raise _fail(loc, f"must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    return value


def optional_identifier(value: object, loc: str) -> str | None:
    return None if value is None else identifier(value, loc)


def idempotency_key(value: object, *, required: bool) -> str | None:
    """1..255 characters; `None` allowed unless `required`."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_LENGTH:
        raise _fail(
            "idempotency_key", f"must be a non-empty string of at most {MAX_KEY_LENGTH} characters"
        )
    return value


def future_time(value: object, loc: str, now: datetime) -> datetime | None:
    """`None`, or a timezone-aware datetime after `now`."""
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _fail(loc, "must be a timezone-aware datetime")
    if value <= now:
        raise _fail(loc, "must be in the future")
    return value


def aware_time(value: object, loc: str) -> datetime:
    """A timezone-aware datetime."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise _fail(loc, "must be a timezone-aware datetime")
    return value


def priority(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**31) < value < 2**31:
        raise _fail("priority", "must be a 32-bit integer")
    return value


def source(value: object) -> str:
    if value not in _SOURCES:
        raise _fail("source", f"must be one of {sorted(_SOURCES)}")
    assert isinstance(value, str)
    return value


def text(value: object, loc: str, max_length: int = 1000) -> str:
    if not isinstance(value, str) or len(value) > max_length:
        raise _fail(loc, f"must be a string of at most {max_length} characters")
    return value


def metadata(value: object) -> dict[str, Any]:
    """A JSON object (dict with string keys, at most `MAX_METADATA_BYTES` of compact JSON,
    integers within 64 bits, no NaN or infinity); `None` means empty. Returned as read back
    from its JSON (tuples become lists, datetimes and UUIDs strings: what is stored)."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail("metadata", "must be a JSON object with string keys")
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise _fail("metadata", f"must be JSON-serialisable: {exc}") from exc
    # orjson writes NaN and infinity as null: look for them only where a null was written.
    if b"null" in encoded and not _finite(value):
        raise _fail("metadata", "must be JSON-serialisable: NaN and infinity are not JSON")
    if len(encoded) > MAX_METADATA_BYTES:
        raise _fail("metadata", f"must encode to at most {MAX_METADATA_BYTES} bytes of JSON")
    decoded: dict[str, Any] = orjson.loads(encoded)
    return decoded


def _finite(value: object) -> bool:
    """No float in `value` (nested dicts and lists) is NaN or infinite."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True
