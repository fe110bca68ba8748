"""Models of `client.refunds`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model
from tollhouse.sdk.models.invoices import Invoice


class Refund(Model):
    """Answered by `POST /v1/refunds`."""

    id: str
    customer_id: str
    hold_id: str
    amount_micros: int
    currency: str
    reason: str
    status: str
    """`succeeded` once the credits are back in the wallet (`pending` only if that was interrupted;
    the server finishes it).
    """
    grant_id: str | None
    """The ledger grant that gave the credits back (source `refund`)."""
    credit_note: Invoice
    created_at: datetime
    completed_at: datetime | None
