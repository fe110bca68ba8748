"""Customers: who is billed. Each customer owns keys, a wallet and a subscription.

Invariants:
- `id` is `cus_<22 base62>`, assigned once, never reused.
- `external_id`, when set, names at most one customer (unique constraint + `CustomerExists`).
- `plan` is a mirror of `subscriptions.plan`, written only by the subscriptions service
  (`sync_customer_plan`) so the gateway reads it with the customer; the catalog decides what
  it means.
- Service functions never commit; the caller owns the transaction.
"""

from tollhouse.customers.errors import CustomerExists, CustomerNotFound, CustomersError
from tollhouse.customers.models import Customer
from tollhouse.customers.service import (
    create,
    get,
    get_by_external_id,
    list_customers,
    plans_in_use,
    set_plan,
)

__all__ = [
    "Customer",
    "CustomerExists",
    "CustomerNotFound",
    "CustomersError",
    "create",
    "get",
    "get_by_external_id",
    "list_customers",
    "plans_in_use",
    "set_plan",
]
