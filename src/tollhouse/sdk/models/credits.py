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
    held_micros: int
    overdraft_limit_micros: int
    grants: list[Grant]


class Transaction(Model):
    """Answered by `GET /v1/customers/{customer_id}/transactions`."""

    id: int
    transfer_id: str
    kind: str
    amount_micros: int
    account_kind: str
    hold_id: str | None
    created_at: datetime
    description: str
    hold_metadata: dict[str, Any] | None = None
