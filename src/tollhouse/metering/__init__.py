"""Metering: idempotent usage events and the aggregates computed from them; and the log of
refused calls (`denials`: analytics, written behind the answer, not exact under a flood).

Invariants:
- Usage events are immutable: rows of `usage_events` are inserted, never updated or deleted.
- A `(customer_id, id)` pair counts once: recording the same id again (in the same call, the
  same batch, another process, or a retry days later) is a duplicate and changes nothing; the
  first write wins.
- Aggregates (sum, count, max per meter, window and group) are computed from the events on
  read; no counter is stored that could drift from them.
- `record()` returns only after the events are committed (group commit: concurrent callers
  share one transaction).
- Every time is UTC-aware; windows are UTC calendar hours, days and months.

```python
from tollhouse.metering import UsageEventIn, UsageRecorder, service as metering

recorder = UsageRecorder(db, clock=clock, known_meters=catalog.meters)
result = await recorder.record([UsageEventIn(id="req_1:in", customer_id="cus_...",
                                             meter="input_tokens", value=812, occurred_at=now)])
async with db.transaction() as session:
    used = await metering.totals(session, customer_id="cus_...",
                                 meters={"input_tokens": "sum"}, start=period_start, end=now)
```
"""

from tollhouse.metering import service
from tollhouse.metering.errors import (
    InvalidUsageEvent,
    InvalidUsageQuery,
    InvalidUsageWindow,
    MeteringError,
    MeteringUnavailable,
    RecorderClosed,
    UnknownMeter,
)
from tollhouse.metering.models import UsageEvent
from tollhouse.metering.recorder import RecorderStats, UsageRecorder, record_in_transaction
from tollhouse.metering.schemas import (
    Aggregation,
    CheckedUsageEvent,
    GroupBy,
    RecordableEvent,
    RecordResult,
    UsageBucket,
    UsageEventIn,
    Window,
    parse_events,
)
from tollhouse.metering.service import query_usage, totals, usage_by_key

__all__ = [
    "Aggregation",
    "CheckedUsageEvent",
    "GroupBy",
    "InvalidUsageEvent",
    "InvalidUsageQuery",
    "InvalidUsageWindow",
    "MeteringError",
    "MeteringUnavailable",
    "RecordResult",
    "RecordableEvent",
    "RecorderClosed",
    "RecorderStats",
    "UnknownMeter",
    "UsageBucket",
    "UsageEvent",
    "UsageEventIn",
    "UsageRecorder",
    "Window",
    "parse_events",
    "query_usage",
    "record_in_transaction",
    "service",
    "totals",
    "usage_by_key",
]
