"""The catalog YAML's shape, as strict pydantic models (unknown keys are errors).

These are the *file* format: money in dollars (strings preferred, numbers accepted and
converted through `str()`), names as mapping keys. `tollhouse.catalog.loader` validates a
document against `CatalogSpec`, checks cross-references and turns it into the immutable
`Catalog` (micros, `Decimal` rates, frozen objects).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic_core import PydanticCustomError

from tollhouse import money
from tollhouse.catalog.routes import Protocol
from tollhouse.catalog.tokenizers import Tokenizer

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
"""Plan, category, upstream and feature names: lowercase, digits, `-` and `_`."""

METER_PATTERN = r"^[a-z][a-z0-9_]*$"
"""Meter names: snake_case."""

MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
"""Model ids as clients send them (`gpt-4o`, `flux.1-schnell`, `llama3.2`)."""

ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
"""Environment variable names."""


def _exact_number(value: Any) -> Any:
    """Convert YAML numbers to `Decimal` through `str()` (so `0.1` stays 0.1); reject bools."""
    if isinstance(value, bool):
        raise PydanticCustomError("decimal_type", "Input should be a number, not a boolean")
    if isinstance(value, float | int):
        return Decimal(str(value))
    return value


def _whole_micros(value: Decimal) -> Decimal:
    """Reject amounts finer than a micro (more than 6 decimal places of a dollar)."""
    try:
        money.to_micros(value)
    except ValueError:
        raise PydanticCustomError(
            "whole_micros", "Input should have at most 6 decimal places (whole micros)"
        ) from None
    return value


def _version_text(value: Any) -> Any:
    """Accept `version: 3`, `version: 2026.1` or `version: 2026-03-15` as text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    return value


Dollars = Annotated[
    Decimal,
    BeforeValidator(_exact_number),
    Field(ge=0, allow_inf_nan=False),
]
"""A non-negative dollar rate, any precision (`"0.0000111"` per audio second)."""

WholeDollars = Annotated[
    Decimal,
    BeforeValidator(_exact_number),
    Field(ge=0, allow_inf_nan=False),
    AfterValidator(_whole_micros),
]
"""A non-negative dollar amount with at most 6 decimals (a whole number of micros)."""

Multiplier = Annotated[  # > 0, any precision (`1.5`)
    Decimal,
    BeforeValidator(_exact_number),
    Field(gt=0, allow_inf_nan=False),
]
Seconds = Annotated[
    float,
    BeforeValidator(_exact_number),
    Field(gt=0, le=86_400, allow_inf_nan=False),
]
"""A positive duration in seconds, at most a day (`2.5`)."""
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
MeterName = Annotated[str, StringConstraints(pattern=METER_PATTERN)]
ModelId = Annotated[str, StringConstraints(pattern=MODEL_ID_PATTERN)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_PATTERN)]
Text = Annotated[str, StringConstraints(strip_whitespace=True)]
Interval = Literal["month", "year", "once"]
"""Billing interval of a plan; `once` = a one-off purchase (lifetime)."""
ResourceTier = Literal["small", "medium", "large", "xlarge"]
"""Compute sizes a metered session can run on."""


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeterSpec(_Spec):
    """`meters.<name>`: a usage quantity and how a period aggregates it."""

    aggregation: Literal["sum", "count", "max"]
    unit: Text = ""
    description: Text = ""


STANDARD_METERS: Mapping[str, MeterSpec] = MappingProxyType(
    {
        "api_calls": MeterSpec(aggregation="count", unit="requests"),
        "input_tokens": MeterSpec(aggregation="sum", unit="tokens"),
        "output_tokens": MeterSpec(aggregation="sum", unit="tokens"),
        "images": MeterSpec(aggregation="sum", unit="images"),
        "audio_seconds": MeterSpec(aggregation="sum", unit="seconds"),
        "characters": MeterSpec(aggregation="sum", unit="characters"),
        "compute_seconds": MeterSpec(aggregation="sum", unit="seconds"),
        "jobs": MeterSpec(aggregation="count", unit="jobs"),
        "storage_bytes": MeterSpec(aggregation="max", unit="bytes"),
    }
)
"""The meters a catalog gets when its YAML has no `meters` key."""


class CategorySpec(_Spec):
    """`categories.<name>`: base limits of a model category for a multiplier-1 plan."""

    requests_per_minute: int = Field(ge=1)
    burst: int | None = Field(default=None, ge=1)
    """Most requests let through at once (the bucket's size); then `requests_per_minute`
    refill it. Default: `requests_per_minute` (a minute's worth at once). `600` requests a
    minute with `burst: 20` is 10 a second with bursts of 20."""
    tokens_per_minute: int | None = Field(default=None, ge=1)
    description: Text = ""


class RolloverSpec(_Spec):
    """`plans.<name>.rollover`: unused included credits carry into the next period.

    `cap` (dollars) bounds what carries over; `null` = no cap.
    """

    cap: WholeDollars | None = None


class PlanSpec(_Spec):
    """`plans.<name>`. `rate_limit_multiplier: null` means unlimited.

    `quotas` caps meters per billing period (meter -> amount in the meter's unit);
    `resource_tiers` lists the session sizes the plan may use and `session_rates` their
    hourly price in dollars; `rollover` (absent = none) lets unused included credits carry
    over into the next period; `max_in_flight` (absent = no cap) is how many gateway requests
    a customer may have under way at once.
    """

    rank: int = Field(ge=0)
    price: WholeDollars = Decimal(0)
    interval: Interval = "month"
    trial_days: int = Field(default=0, ge=0)
    rate_limit_multiplier: Multiplier | None = Decimal(1)
    included_credits: WholeDollars = Decimal(0)
    features: list[Name] = Field(default_factory=list)
    quotas: dict[MeterName, Annotated[int, Field(ge=0, strict=True)]] = Field(default_factory=dict)
    resource_tiers: list[ResourceTier] = Field(default_factory=list)
    session_rates: dict[ResourceTier, WholeDollars] = Field(default_factory=dict)
    rollover: RolloverSpec | None = None
    max_in_flight: int | None = Field(default=None, ge=1, le=1_000_000, strict=True)
    description: Text = ""


class UpstreamSpec(_Spec):
    """`upstreams.<name>`: where requests for its models are forwarded."""

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+\S*$")]
    api_key_env: EnvName | None = None
    protocol: Protocol = "openai"
    description: Text = ""


class PriceSpec(_Spec):
    """`models.<id>.price`: dollars; every component optional (absent = not charged)."""

    per_request: WholeDollars | None = None
    input_per_1m_tokens: Dollars | None = None
    output_per_1m_tokens: Dollars | None = None
    per_image: Dollars | None = None
    per_audio_second: Dollars | None = None
    per_1m_characters: Dollars | None = None


class ModelUpstreamSpec(_Spec):
    """`models.<id>.upstreams[]`: one upstream that may serve the model.

    `model` is the name the upstream knows it by (default: the model's `upstream_model`,
    else its id). Entries are tried by `priority` (>= 1, lower first; default 1), and within
    a priority in an order drawn by `weight` (>= 1; default 1): see `catalog.upstreams`.
    `timeout_seconds` (> 0) bounds a call to this upstream instead of the gateway's
    `upstream_timeout_seconds`."""

    upstream: Name
    model: Annotated[str, StringConstraints(min_length=1)] | None = None
    weight: int = Field(default=1, ge=1, le=1_000_000, strict=True)
    priority: int = Field(default=1, ge=1, le=1_000, strict=True)
    timeout_seconds: Seconds | None = None


class ModelSpec(_Spec):
    """`models.<id>`: one registry entry. `upstream_model` defaults to the id,
    `min_plan` to the catalog's `default_plan`, `tokenizer` (the encoding that counts its
    tokens for a hold's estimate) to the one its name's family uses (`catalog.tokenizers`).

    Exactly one of `upstream` (one upstream) and `upstreams` (fallback upstreams, at least
    one entry, all speaking the same protocol) is given; the loader checks that."""

    category: Name
    upstream: Name | None = None
    upstreams: list[ModelUpstreamSpec] | None = Field(default=None, min_length=1)
    upstream_model: Annotated[str, StringConstraints(min_length=1)] | None = None
    price: PriceSpec = Field(default_factory=PriceSpec)
    min_plan: Name | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    tokenizer: Tokenizer | None = None
    description: Text = ""


class SessionPackSpec(_Spec):
    """`session_products.<name>.packs[]`: `sessions` prepaid sessions bought for `price`."""

    sessions: int = Field(ge=1, le=1_000_000, strict=True)
    price: WholeDollars


class SessionProductSpec(_Spec):
    """`session_products.<name>`: a flat session sold for `price` (dollars) that ends after
    `duration` seconds or `max_tokens` tokens (input + output, as the upstream reports them;
    absent = no token cap), whichever comes first. It covers the `models` and every model of
    the `categories` listed (at least one of the two); `required: true` means those models
    may only be called inside an active session. `packs` sell sessions in bulk."""

    price: WholeDollars
    duration: int = Field(ge=1, le=366 * 86400, strict=True)
    max_tokens: int | None = Field(default=None, ge=1, le=10**12, strict=True)
    models: list[ModelId] = Field(default_factory=list)
    categories: list[Name] = Field(default_factory=list)
    required: bool = False
    packs: list[SessionPackSpec] = Field(default_factory=list)
    description: Text = ""


class CreditPackSpec(_Spec):
    """`credit_packs.<name>`: `price` (dollars, > 0) buys `credits` (default: the price) and
    a `bonus` (default none) that expires `bonus_expiry_days` after the payment (absent =
    never). E.g. `{price: "50.00", bonus: "5.00"}`: $50 buys $55."""

    price: Annotated[WholeDollars, Field(gt=0)]
    credits: Annotated[WholeDollars, Field(gt=0)] | None = None
    bonus: WholeDollars = Decimal(0)
    bonus_expiry_days: int | None = Field(default=None, ge=1, le=36_500, strict=True)
    description: Text = ""


class ComputeSessionsSpec(_Spec):
    """`compute_sessions`: how metered sessions are held and watched, in seconds.

    A start holds `min_run` seconds of the tier's rate; while the session runs, its paid time
    grows by `slice` seconds (a new hold) once less than one slice is left. A session without a
    heartbeat for `heartbeat_timeout` seconds is stopped (`null`: heartbeats not required).
    `session.low_credit` is emitted when the wallet covers fewer than `low_credit_slices`
    slices after a hold (0: never)."""

    min_run: int = Field(default=900, ge=1, le=7 * 86400, strict=True)
    slice: int = Field(default=300, ge=1, le=86400, strict=True)
    heartbeat_timeout: int | None = Field(default=None, ge=1, le=7 * 86400, strict=True)
    low_credit_slices: int = Field(default=3, ge=0, le=10_000, strict=True)


class CatalogSpec(_Spec):
    """The whole file. `meters` defaults to the standard set when the key is absent."""

    version: Annotated[str, BeforeValidator(_version_text), StringConstraints(min_length=1)]
    currency: Annotated[str, StringConstraints(pattern=r"^[a-z]{3}$")] = "usd"
    default_plan: Name = "free"
    meters: dict[MeterName, MeterSpec] | None = None
    categories: dict[Name, CategorySpec] = Field(default_factory=dict)
    plans: dict[Name, PlanSpec]
    upstreams: dict[Name, UpstreamSpec] = Field(default_factory=dict)
    models: dict[ModelId, ModelSpec] = Field(default_factory=dict)
    session_products: dict[Name, SessionProductSpec] = Field(default_factory=dict)
    credit_packs: dict[Name, CreditPackSpec] = Field(default_factory=dict)
    compute_sessions: ComputeSessionsSpec = Field(default_factory=ComputeSessionsSpec)
