"""Models of `client.credits`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tollhouse.sdk.models._model import Model


class Grant(Model):
    """Answered by `POST /v1/customers/{customer_id}/credits/grants`."""

    id: str
    amount_micros: int
    remaining_micros: int
    expires_at: datetime | None
    priority: int
    source: str


class Balance(Model):
    """Answered by `GET /v1/customers/{customer_id}/balance`."""

    customer_id: str
    currency: str
    available_micros: int
    """Spendable now: the sum of live grants, net of holds."""
    held_micros: int
    """Reserved by open holds."""
    overdraft_limit_micros: int
    grants: list[Grant]


class Transaction(Model):
    """Answered by `GET /v1/customers/{customer_id}/transactions`."""

    id: int
    transfer_id: str
    kind: str
    amount_micros: int
    """Signed: positive adds to the customer's side."""
    account_kind: str
    hold_id: str | None
    created_at: datetime
    description: str
    hold_metadata: dict[str, Any] | None = None
    """What the entry's hold paid for, as its metadata: `{"model", "key_id", "request"}` for a
    gateway call, `{"purpose": "session_fee", "session_id", "product"}` for a session's fee,
    `{"purpose": "session_pack", ...}` for a pack.
    """
