"""Ledger reads: plain async functions over an `AsyncSession` (they never write or commit).

```python
from tollhouse.ledger import service as ledger_service
wallet = await ledger_service.balance(session, customer_id, now=clock.now())
```
Writes go through `tollhouse.ledger.Ledger` (the group-commit writer).
"""

from tollhouse.ledger.schemas import Balance, GrantView, HoldView, TransactionView
from tollhouse.ledger.service.invariants import check_invariants
from tollhouse.ledger.service.reads import (
    MAX_PAGE,
    balance,
    find_hold,
    get_hold,
    list_grants,
    transactions,
)
from tollhouse.ledger.service.revenue import (
    RevenueDay,
    Spender,
    available_by_customer,
    revenue_by_day,
    top_spenders,
)

__all__ = [
    "MAX_PAGE",
    "Balance",
    "GrantView",
    "HoldView",
    "RevenueDay",
    "Spender",
    "TransactionView",
    "available_by_customer",
    "balance",
    "check_invariants",
    "find_hold",
    "get_hold",
    "list_grants",
    "revenue_by_day",
    "top_spenders",
    "transactions",
]
