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
    """Once ended: `duration`, `tokens` or `terminated`; metered sessions also `credit` (the wallet
    could not cover the next slice), `heartbeat` (none within the catalog's timeout) or `lapsed`
    (its paid time ran out while no tollhouse process ran).
    """
    token_cap: int | None
    tokens_used: int
    tokens_left: int | None
    """None without a token cap; 0 once ended."""
    seconds_left: int | None
    """None without a duration cap; 0 once ended."""
    fee_micros: int
    """What the session cost, in micros of `currency`."""
    currency: str
    paid_with: str
    """`pack` or `wallet`."""
    pack_id: str | None
    hold_id: str | None
    """The ledger hold that paid the fee (wallet), or a metered session's first slice hold: its
    capture is in the transactions.
    """
    auto_renew: bool
    """A cap ending it starts the next one on the next covered call."""
    resource_tier: str | None
    """Metered: the tier it runs on (None for flat sessions, like the fields below)."""
    rate_micros_per_hour: int | None
    """Metered: the plan's rate for the tier when it started."""
    paid_until: datetime | None
    """Metered: how far its holds cover; extended a slice ahead while it runs."""
    last_heartbeat_at: datetime | None
    cost_micros: int
    """What it costs as of now: a flat session's fee; a running metered session's cost so far (per
    second, rounded up once: `ceil(ceil(seconds) * rate / 3600)`), its final bill once ended.
    """
    billed_micros: int | None
    """Metered: the final bill once ended."""
    settled_at: datetime | None
    """Metered: when its holds were captured and released, after it ended."""


class Estimate(Model):
    """Answered by `POST /v1/sessions/estimate`."""

    resource_tier: str
    plan: str
    """The customer's plan, whose rate prices the tier."""
    rate_micros_per_hour: int
    duration_seconds: int
    cost_micros: int
    """The cost of running `duration_seconds`, in micros of `currency`."""
    min_run_seconds: int
    start_hold_micros: int
    """What a start holds on the wallet (its minimum run): the wallet must cover it."""
    slice_seconds: int
    slice_micros: int
    """What each further slice holds while it runs."""
    currency: str


class SessionQuota(Model):
    """Answered by `GET /v1/sessions/quota`."""

    product: str
    sessions_left: int
    """Prepaid sessions of the product not yet started."""


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
