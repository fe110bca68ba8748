"""Metering errors.

```
TollhouseError
└── MeteringError (500 metering-error)
    ├── InvalidUsageEvent (422 invalid-usage-event)    an event failed validation; `errors`
    ├── UnknownMeter (422 unknown-meter)               meter not in the catalog; `meter`
    ├── InvalidUsageQuery (422 invalid-usage-query)    bad aggregation or non-aware time
    │   └── InvalidUsageWindow (422 invalid-usage-window)   end <= start, or too many windows
    └── MeteringUnavailable (503 metering-unavailable) the events' write failed (the database);
        │                                              nothing of the call was recorded: retry
        │                                              after `retry_after_seconds`
        └── RecorderClosed (503 metering-unavailable)  record() after UsageRecorder.stop()
```
"""

from __future__ import annotations

from tollhouse.errors import TollhouseError


class MeteringError(TollhouseError):
    """Base of the metering family."""

    status, code, title = 500, "metering-error", "Metering error"


class InvalidUsageEvent(MeteringError):
    """A usage event failed validation; `errors` lists `{"loc", "msg"}` per offending field."""

    status, code, title = 422, "invalid-usage-event", "Invalid usage event"


class UnknownMeter(MeteringError):
    """An event names a meter the catalog does not declare; `meter` is its name."""

    status, code, title = 422, "unknown-meter", "Unknown meter"


class InvalidUsageQuery(MeteringError):
    """A usage query is malformed (unknown aggregation, naive datetime, ...)."""

    status, code, title = 422, "invalid-usage-query", "Invalid usage query"


class InvalidUsageWindow(InvalidUsageQuery):
    """`end <= start`, or the range holds more windows than one query may return."""

    status, code, title = 422, "invalid-usage-window", "Invalid usage window"


class MeteringUnavailable(MeteringError):
    """Usage events could not be written now (the database refused or could not be reached);
    nothing of the call was recorded, so the caller retries it, same ids, after
    `retry_after_seconds` (a retry of events that were stored after all counts them once)."""

    status, code, title = 503, "metering-unavailable", "Usage recording unavailable"


class RecorderClosed(MeteringUnavailable):
    """The usage recorder was stopped; nothing more can be recorded through it."""
