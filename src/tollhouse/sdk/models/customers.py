"""Models of `client.customers`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class Customer(Model):
    """Answered by `POST /v1/customers`."""

    id: str
    name: str
    email: str | None
    external_id: str | None
    plan: str
    created_at: datetime
    country: str | None = None
