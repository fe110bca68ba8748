"""Models of `client.catalog`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk.models._model import Model


class Plan(Model):
    """Answered by `GET /v1/catalog`."""

    name: str
    rank: int
    price_micros: int
    interval: str
    trial_days: int
    rate_limit_multiplier: str | None
    """None = unlimited."""
    included_credits_micros: int
    features: list[str]
    quotas: dict[str, int]
    """Meter -> cap per billing period, in the meter's unit."""
    resource_tiers: list[str]
    session_rates_micros_per_hour: dict[str, int]
    rollover_cap_micros: int | None
    """Unused included credits carried into the next period, at most this; None = no rollover."""
    max_in_flight: int | None = None
    """Most gateway requests a customer on this plan may have under way at once; None = no cap."""
    description: str


class Category(Model):
    """Answered by `GET /v1/catalog`."""

    name: str
    requests_per_minute: int
    tokens_per_minute: int | None
    burst: int | None = None
    """Requests let through at once for a multiplier-1 plan; None: `requests_per_minute`."""


class Price(Model):
    """Answered by `GET /v1/catalog`."""

    per_request_micros: int | None
    input_per_1m_tokens_micros: str | None
    output_per_1m_tokens_micros: str | None
    per_image_micros: str | None
    per_audio_second_micros: str | None
    per_1m_characters_micros: str | None


class CatalogModel(Model):
    """Answered by `GET /v1/catalog`."""

    id: str
    category: str
    min_plan: str
    max_output_tokens: int | None
    description: str
    price: Price


class Catalog(Model):
    """Answered by `GET /v1/catalog`."""

    version: str
    currency: str
    default_plan: str
    plans: list[Plan]
    categories: list[Category]
    models: list[CatalogModel]
    meters: dict[str, str]
