"""Events: the outbox of lifecycle facts (`session.started`, `session.ended`, `credits.low`,
...), read at `GET /v1/events` and delivered by webhooks.

```python
from tollhouse.events import service as events

async with db.transaction() as session:
    ...  # the change itself
    await events.emit(session, customer_id=customer.id, type="session.ended",
                      data={"session_id": sid, "reason": "cap", "cost_micros": 1_000_000})
```

Invariants:
- An event is written atomically with the change it describes: `emit` only adds the row to
  the caller's session, so both commit together or neither does. It never commits.
- Events are never updated or deleted by tollhouse.
- `id` (`evt_<22 base62>`) is the order: time-ordered, and increasing within a process, so
  the events one transaction emits are read in the order it emitted them.
- A delivery cursor reads it: `list_events(after=<last id seen>)` pages ascending by id, and
  `next_cursor` is the id to resume from. What a cursor cannot see: a transaction that
  commits after a reader has passed a later id (a concurrent one, or another process's)
  lands below the cursor. A deliverer reads events older than its longest transaction, or
  records deliveries per event, rather than trust the cursor alone.
- `type` is dotted lowercase `domain.verb`; `data` a JSON object (ids as strings, money as
  integer micros). The row has the members of a Standard Webhooks payload: `id`, `type`,
  `created_at`, `data`, and the customer (null for an operator-wide event).

Imports: `storage`, `errors`, `ids`, `clock` only; any domain may emit.
"""

from tollhouse.events.models import Event
from tollhouse.events.schemas import EventPage, EventView
from tollhouse.events.service import emit, list_events, recent_events

__all__ = ["Event", "EventPage", "EventView", "emit", "list_events", "recent_events"]
