"""Models of `client.auto_top_up`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class AutoTopUp(Model):
    """Answered by `GET /v1/customers/{customer_id}/auto-top-up`."""

    customer_id: str
    enabled: bool
    threshold_micros: int
    pack: str
    armed: bool
    """True: the next debit below the threshold buys the pack (once per crossing)."""
    fired_count: int
    last_fired_at: datetime | None
    last_payment_id: str | None
    last_error: str | None
