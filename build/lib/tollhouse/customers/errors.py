"""Customer errors.

```
TollhouseError
└── CustomersError                          (family marker)
    ├── CustomerNotFound (404 customer-not-found)     also a NotFound
    └── CustomerExists (409 customer-exists)          also a Conflict; extra: external_id
```
"""

from __future__ import annotations

from tollhouse.errors import Conflict, NotFound, TollhouseError


class CustomersError(TollhouseError):
    """Base of the customers domain's errors."""


class CustomerNotFound(NotFound, CustomersError):
    """No customer with that id (or cursor)."""

    status, code, title = 404, "customer-not-found", "Customer not found"


class CustomerExists(Conflict, CustomersError):
    """Another customer already has this `external_id`."""

    status, code, title = 409, "customer-exists", "Customer already exists"
