"""Models of `client.checkout`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from tollhouse.sdk.models._model import Model


class SessionPackItem(TypedDict):
    """Part of the body of `POST /v1/checkout`."""

    product: str
    sessions: int
    """One of the product's pack sizes."""


class Checkout(Model):
    """Answered by `POST /v1/checkout`."""

    id: str
    customer_id: str
    provider: str
    kind: str
    """`credit_pack`, `session_pack` or `plan`."""
    item: str
    sessions: int | None
    price_micros: int
    """What the page charges (per period for a subscription), micros of `currency`."""
    credits_micros: int
    bonus_micros: int
    currency: str
    mode: str
    """`payment` or `subscription`."""
    status: str
    """`creating`, `open`, `completed` or `expired`."""
    url: str | None
    """Send the customer here to pay."""
    provider_session_id: str | None
    created_at: datetime
    expires_at: datetime | None
    completed_at: datetime | None
