"""Models of `client.sessions`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class Session(Model):
    """Answered by `POST /v1/sessions`."""

    id: str
    customer_id: str
    kind: str
    product: str
    status: str
    started_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    token_cap: int | None
    tokens_used: int
    tokens_left: int | None
    seconds_left: int | None
    fee_micros: int
    currency: str
    paid_with: str
    pack_id: str | None
    hold_id: str | None
    auto_renew: bool
    resource_tier: str | None
    rate_micros_per_hour: int | None
    paid_until: datetime | None
    last_heartbeat_at: datetime | None
    cost_micros: int
    billed_micros: int | None
    settled_at: datetime | None


class Estimate(Model):
    """Answered by `POST /v1/sessions/estimate`."""

    resource_tier: str
    plan: str
    rate_micros_per_hour: int
    duration_seconds: int
    cost_micros: int
    min_run_seconds: int
    start_hold_micros: int
    slice_seconds: int
    slice_micros: int
    currency: str


class SessionQuota(Model):
    """Answered by `GET /v1/sessions/quota`."""

    product: str
    sessions_left: int


class QuotaList(Model):
    """Answered by `GET /v1/sessions/quota`."""

    customer_id: str
    products: list[SessionQuota]


class Pack(Model):
    """Answered by `POST /v1/sessions/quota/add`."""

    id: str
    customer_id: str
    product: str
    sessions: int
    sessions_left: int
    price_micros: int
    currency: str
    hold_id: str
    created_at: datetime
