"""Credit alerts: a per-customer low-credit threshold (an amount, or a percent of the latest
grant) that fires once per downward crossing of the available balance.

Invariants:
- `credits.low` is emitted when the balance falls below the threshold, `credits.depleted` when
  it reaches zero, each once per crossing: the stored state moves by a conditional update in
  the transaction that emits the events, so processes racing on one crossing emit once.
- Rising back above the threshold (or above zero) re-arms it, without an event.
- Setting a threshold starts from the current balance without an event.
- Each process watches every new hold's balance from memory (`CreditWatch`, the ledger's
  hold listener): the balance it compares is the one the hold left (`available_after_micros`).

Imports: customers, ledger, events, storage.
"""

from tollhouse.alerts import service
from tollhouse.alerts.models import AlertState
from tollhouse.alerts.service import AlertView
from tollhouse.alerts.watch import CreditWatch

__all__ = ["AlertState", "AlertView", "CreditWatch", "service"]
