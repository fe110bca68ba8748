"""The loaded catalog: immutable plans, categories, meters, upstreams and models.

Everything here is frozen; the mappings are read-only views (`types.MappingProxyType`) in
the order of the YAML. Build one with `tollhouse.catalog.load_catalog`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, TypeVar

from tollhouse.catalog.errors import (
    CatalogError,
    CategoryNotFound,
    CreditPackNotFound,
    FeatureNotInPlan,
    ModelNotFound,
    ModelNotInPlan,
    PlanNotFound,
    ResourceTierNotInPlan,
    SessionProductNotFound,
    UpstreamNotFound,
)
from tollhouse.catalog.packs import CreditPack
from tollhouse.catalog.pricing import Price
from tollhouse.catalog.routes import Protocol, RouteKind
from tollhouse.catalog.tokenizers import DEFAULT_TOKENIZER, Tokenizer
from tollhouse.catalog.upstreams import ModelUpstream
from tollhouse.errors import InvalidInput

Aggregation = Literal["sum", "count", "max"]
"""How a meter's events combine over a period: SUM(value), COUNT(*) or MAX(value)."""

Interval = Literal["month", "year", "once"]
"""A plan's billing interval; `once` is a one-off purchase (lifetime)."""

ResourceTier = Literal["small", "medium", "large", "xlarge"]
"""Compute sizes a metered session can run on."""

RESOURCE_TIERS: tuple[ResourceTier, ...] = ("small", "medium", "large", "xlarge")
"""Every resource tier, smallest first."""


@dataclass(frozen=True, slots=True)
class Meter:
    """A named usage quantity (`input_tokens`) and its aggregation over a period."""

    name: str
    aggregation: Aggregation
    unit: str = ""
    description: str = ""


@dataclass(frozen=True, slots=True)
class Category:
    """A model category and its base limits, per minute, for a plan with multiplier 1.

    `tokens_per_minute` is `None` when the category has no token limit; `burst` (requests
    let through at once) is `None` for a minute's worth, `requests_per_minute`.
    """

    name: str
    requests_per_minute: int
    tokens_per_minute: int | None = None
    description: str = ""
    burst: int | None = None


@dataclass(frozen=True, slots=True)
class CategoryLimits:
    """A plan's limits in one category, per minute; `None` = unlimited. `burst` is the
    requests let through at once (`None`: `requests_per_minute`)."""

    requests_per_minute: int | None
    tokens_per_minute: int | None
    burst: int | None = None

    @property
    def is_unlimited(self) -> bool:
        """True when neither requests nor tokens are limited."""
        return self.requests_per_minute is None and self.tokens_per_minute is None


@dataclass(frozen=True, slots=True)
class RolloverPolicy:
    """Unused included credits of a period carry into the next one, at most `cap_micros`
    (`None` = no cap)."""

    cap_micros: int | None = None

    def carried(self, unused_micros: int) -> int:
        """What carries over from `unused_micros` left at the end of a period."""
        unused = max(0, unused_micros)
        return unused if self.cap_micros is None else min(unused, self.cap_micros)


def _no_limits() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Plan:
    """A tier. Money in micros of the catalog currency.

    `price_micros` is charged per `interval` (`once` for lifetime); `included_credits_micros`
    are granted each period (once for `once`). `rate_limit_multiplier` scales every
    category's base limits; `None` = unlimited. Higher `rank` includes lower ranks' models.

    `quotas` caps meters per billing period (meter -> amount in the meter's unit; a meter
    not listed is uncapped). `resource_tiers` are the session sizes the plan may use and
    `session_rates` their price in micros per hour. `rollover` lets unused included credits
    carry into the next period (`None`: they expire at period end). `max_in_flight` caps the
    gateway requests a customer may have under way at once (`None`: no cap).
    """

    name: str
    rank: int
    price_micros: int
    interval: Interval
    trial_days: int
    rate_limit_multiplier: Decimal | None
    included_credits_micros: int
    features: frozenset[str] = frozenset()
    description: str = ""
    quotas: Mapping[str, int] = field(default_factory=_no_limits, hash=False)
    resource_tiers: frozenset[str] = frozenset()
    session_rates: Mapping[str, int] = field(default_factory=_no_limits, hash=False)
    rollover: RolloverPolicy | None = None
    max_in_flight: int | None = None

    def has_feature(self, feature: str) -> bool:
        """True when the plan lists `feature` (e.g. `batch_generation`)."""
        return feature in self.features

    def has_tier(self, tier: str) -> bool:
        """True when the plan may run sessions on resource tier `tier` (e.g. `large`)."""
        return tier in self.resource_tiers

    def quota(self, meter: str) -> int | None:
        """The cap on `meter` per billing period, in the meter's unit; `None` = uncapped."""
        return self.quotas.get(meter)

    def session_rate_micros(self, tier: str) -> int | None:
        """Micros per hour of a metered session on `tier`; `None` when not offered."""
        return self.session_rates.get(tier)

    @property
    def is_recurring(self) -> bool:
        """True for `month` and `year` plans (charged each period), False for `once`."""
        return self.interval != "once"


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where a model's requests go. The API key is read from `api_key_env` at call time."""

    name: str
    base_url: str
    api_key_env: str | None = None
    protocol: Protocol = "openai"
    description: str = ""


@dataclass(frozen=True, slots=True)
class Model:
    """A registry entry: `id` as clients send it, `upstream_model` as the upstream knows it.

    `upstreams` are the upstreams that may serve it, sorted by priority (`catalog.upstreams`
    gives the order a call tries them in); `upstream` and `upstream_model` are the first one
    listed in the YAML (all of a model's upstreams speak the same protocol). Left empty, it
    is that one upstream. `tokenizer` is the encoding that counts its prompt for a hold's
    estimate, resolved when the catalog loads (`catalog.tokenizers`). One `price` whichever
    upstream serves. `routes` are the gateway route kinds it is served on, from its category
    and its upstreams' protocol (`catalog.routes`; empty: not callable through the gateway,
    only metered with the sidecar)."""

    id: str
    category: str
    upstream: str
    upstream_model: str
    price: Price
    min_plan: str
    max_output_tokens: int | None = None
    description: str = ""
    tokenizer: Tokenizer = DEFAULT_TOKENIZER
    routes: frozenset[RouteKind] = frozenset()
    upstreams: tuple[ModelUpstream, ...] = ()

    def __post_init__(self) -> None:
        if not self.upstreams:
            only = (ModelUpstream(self.upstream, self.upstream_model),)
            object.__setattr__(self, "upstreams", only)


@dataclass(frozen=True, slots=True)
class SessionPack:
    """`sessions` prepaid sessions of a product, sold together for `price_micros`."""

    sessions: int
    price_micros: int


@dataclass(frozen=True, slots=True)
class SessionProduct:
    """A flat session: `price_micros` buys `duration_seconds` of use or `max_tokens` tokens
    (input + output as the upstream reports them; `None` = no token cap), whichever ends
    first, on the `models` and on every model of the `categories`.

    `required`: calls to a covered model need an active session. `packs` sell sessions in
    bulk, in YAML order.
    """

    name: str
    price_micros: int
    duration_seconds: int
    max_tokens: int | None = None
    models: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    required: bool = False
    packs: tuple[SessionPack, ...] = ()
    description: str = ""

    def covers(self, model: Model) -> bool:
        """True when a session of this product covers calls to `model`."""
        return model.id in self.models or model.category in self.categories

    def pack(self, sessions: int) -> SessionPack:
        """The pack of `sessions` sessions.

        Raises:
            InvalidInput: the product sells no pack of that size (`errors` loc `sessions`).
        """
        for pack in self.packs:
            if pack.sessions == sessions:
                return pack
        sizes = ", ".join(str(p.sessions) for p in self.packs) or "none"
        msg = f"product {self.name!r} sells no pack of {sessions} sessions (packs: {sizes})"
        raise InvalidInput(msg, errors=[{"loc": "sessions", "msg": msg}])


def _no_products() -> Mapping[str, SessionProduct]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ComputeSessions:
    """How metered (compute) sessions are held and watched: the YAML's `compute_sessions`.

    `min_run_seconds`: a start holds this much run time (the wallet must cover it).
    `slice_seconds`: while a session runs, its paid time is extended by one slice (a new
    hold) once less than one slice of it is left. `heartbeat_timeout_seconds`: a session
    without a heartbeat for this long is stopped (`None`: heartbeats are not required).
    `low_credit_slices`: `session.low_credit` is emitted when, after a hold, the wallet covers
    fewer slices than this (0: never).
    """

    min_run_seconds: int = 900
    slice_seconds: int = 300
    heartbeat_timeout_seconds: int | None = None
    low_credit_slices: int = 3


BUILTIN_SOURCE = "built-in"
"""`Catalog.source` of the catalog shipped with tollhouse."""


@dataclass(frozen=True, slots=True, eq=False)
class Catalog:
    """Plans, categories, meters, upstreams and models; cross-references are valid.

    Compared and hashed by identity (one loaded catalog per process, usable as a cache key).
    `source` says where it came from (an absolute path, or `built-in`); `digest` is the
    SHA-256 (hex) of its YAML bytes, as `sha256sum` prints it.

    Invariants (checked by the loader): every model's `category`, `upstreams` and `min_plan`
    exist, and a model's upstreams speak one protocol; `default_plan` exists; plan ranks are unique; every session product names existing
    models and categories (at least one) and its pack sizes are unique; credit pack prices are
    whole minor units of the currency (cents).
    """

    version: str
    currency: str
    default_plan: str
    meters: Mapping[str, Meter]
    categories: Mapping[str, Category]
    plans: Mapping[str, Plan]
    upstreams: Mapping[str, Upstream]
    models: Mapping[str, Model]
    source: str = "<string>"
    digest: str = ""
    session_products: Mapping[str, SessionProduct] = field(default_factory=_no_products)
    credit_packs: Mapping[str, CreditPack] = field(default_factory=lambda: MappingProxyType({}))
    compute_sessions: ComputeSessions = field(default_factory=ComputeSessions)
    _plans_by_rank: tuple[Plan, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ranked = tuple(sorted(self.plans.values(), key=lambda plan: plan.rank))
        object.__setattr__(self, "_plans_by_rank", ranked)

    def model(self, model_id: str) -> Model:
        """The model `model_id`.

        Raises:
            ModelNotFound: no such model.
        """
        return _get(self.models, model_id, ModelNotFound, "model", "model")

    def session_product(self, name: str) -> SessionProduct:
        """The session product `name`.

        Raises:
            SessionProductNotFound: no such product (`known` lists the catalog's products).
        """
        product = self.session_products.get(name)
        if product is None:
            raise SessionProductNotFound(
                f"session product {name!r} does not exist",
                product=name,
                known=sorted(self.session_products),
            )
        return product

    def credit_pack(self, name: str) -> CreditPack:
        """The credit pack `name`. Raises: CreditPackNotFound."""
        return _get(self.credit_packs, name, CreditPackNotFound, "credit pack", "pack")

    def plan(self, name: str) -> Plan:
        """The plan `name`.

        Raises:
            PlanNotFound: no such plan.
        """
        return _get(self.plans, name, PlanNotFound, "plan", "plan")

    def category(self, name: str) -> Category:
        """The model category `name`.

        Raises:
            CategoryNotFound: no such category.
        """
        return _get(self.categories, name, CategoryNotFound, "model category", "category")

    def upstream(self, name: str) -> Upstream:
        """The upstream `name`.

        Raises:
            UpstreamNotFound: no such upstream.
        """
        return _get(self.upstreams, name, UpstreamNotFound, "upstream", "upstream")

    def aggregations(self, names: Sequence[str] | None = None) -> dict[str, Aggregation]:
        """Meter name -> aggregation, for `names` (every meter when `None`), in that order.

        Raises:
            InvalidInput: a name is not a meter of the catalog (422; `errors` has one
                `{loc: "meter", msg}` per unknown name).
        """
        wanted = list(self.meters) if names is None else list(dict.fromkeys(names))
        unknown = [name for name in wanted if name not in self.meters]
        if unknown:
            raise InvalidInput(
                f"unknown meters: {', '.join(unknown)} (known: {', '.join(self.meters)})",
                errors=[{"loc": "meter", "msg": f"unknown meter '{name}'"} for name in unknown],
            )
        return {name: self.meters[name].aggregation for name in wanted}

    @property
    def plans_by_rank(self) -> tuple[Plan, ...]:
        """All plans, lowest rank first."""
        return self._plans_by_rank

    def limits_for(self, plan: str, category: str) -> CategoryLimits:
        """The per-minute limits of `plan` in `category`.

        Each base limit (and the burst) times the plan's multiplier, rounded down, at least
        1. A plan with
        multiplier `None` is unlimited (both `None`); a category without a token limit gives
        `tokens_per_minute=None`.

        Raises:
            PlanNotFound, CategoryNotFound: unknown name.
        """
        multiplier = self.plan(plan).rate_limit_multiplier
        base = self.category(category)
        if multiplier is None:
            return CategoryLimits(requests_per_minute=None, tokens_per_minute=None)
        tokens = base.tokens_per_minute
        return CategoryLimits(
            requests_per_minute=_scaled(base.requests_per_minute, multiplier),
            tokens_per_minute=None if tokens is None else _scaled(tokens, multiplier),
            burst=None if base.burst is None else _scaled(base.burst, multiplier),
        )

    def can_use(self, plan: str, model_id: str) -> bool:
        """True when `plan` ranks at or above the model's `min_plan`.

        Raises:
            PlanNotFound, ModelNotFound: unknown name.
        """
        return self.plan(plan).rank >= self.lowest_plan_for_model(model_id).rank

    def require_model(self, plan: str, model_id: str) -> Model:
        """The model, if `plan` may use it: the gateway's access check in one call.

        Raises:
            ModelNotFound: no such model.
            PlanNotFound: no such plan.
            ModelNotInPlan: the plan ranks below the model's `min_plan`.
        """
        model = self.model(model_id)
        if not self.can_use(plan, model_id):
            raise ModelNotInPlan(
                f"model {model_id!r} needs plan {model.min_plan!r} or higher; "
                f"the current plan is {plan!r}",
                model=model_id,
                required_plan=model.min_plan,
                plan=plan,
            )
        return model

    def plan_with_feature(self, feature: str) -> Plan | None:
        """The lowest-rank plan that has `feature`, or `None` when no plan has it."""
        return self._lowest_plan(lambda p: p.has_feature(feature))

    def plan_with_tier(self, tier: str) -> Plan | None:
        """The lowest-rank plan that offers resource tier `tier`, or `None`."""
        return self._lowest_plan(lambda p: p.has_tier(tier))

    def _lowest_plan(self, pred: Callable[[Plan], bool]) -> Plan | None:
        return next((p for p in self._plans_by_rank if pred(p)), None)

    def lowest_plan_for_model(self, model_id: str) -> Plan:
        """The lowest-rank plan that may use the model (its `min_plan`).

        Raises:
            ModelNotFound: no such model.
        """
        return self.plans[self.model(model_id).min_plan]

    def require_feature(self, plan: str, feature: str) -> Plan:
        """The plan, if it has `feature`: the entitlement check in one call.

        Raises:
            PlanNotFound: no such plan.
            FeatureNotInPlan: the plan lacks the feature; `required_plan` names the lowest
                plan that has it (`None` when none does).
        """
        return self._require(
            plan, lambda p: p.has_feature(feature), FeatureNotInPlan,
            f"feature {feature!r}", feature=feature,
        )  # fmt: skip

    def require_tier(self, plan: str, tier: str) -> Plan:
        """The plan, if it offers resource tier `tier`.

        Raises:
            PlanNotFound: no such plan.
            ResourceTierNotInPlan: the plan lacks the tier; `required_plan` names the lowest
                plan that offers it (`None` when none does).
        """
        return self._require(
            plan, lambda p: p.has_tier(tier), ResourceTierNotInPlan,
            f"resource tier {tier!r}", tier=tier,
        )  # fmt: skip

    def _require(
        self,
        plan: str,
        pred: Callable[[Plan], bool],
        error: type[CatalogError],
        what: str,
        **extra: str,
    ) -> Plan:
        current = self.plan(plan)
        if pred(current):
            return current
        required = self._lowest_plan(pred)
        needed = f"plan {required.name!r} or higher" if required else "a plan that has it"
        raise error(
            f"{what} needs {needed}; the current plan is {plan!r}",
            **extra,
            required_plan=required.name if required else None,
            plan=plan,
        )

    def models_for_plan(self, plan: str) -> list[Model]:
        """The models `plan` may use, in catalog order (for `/v1/models`).

        Raises:
            PlanNotFound: unknown plan.
        """
        rank = self.plan(plan).rank
        return [m for m in self.models.values() if self.plans[m.min_plan].rank <= rank]

    def describe(self) -> dict[str, str]:
        """`{source, version, digest}`: how errors name this catalog."""
        return {"source": self.source, "version": self.version, "digest": self.digest}

    def upstream_api_key(
        self, upstream_name: str, *, environ: Mapping[str, str] | None = None
    ) -> str | None:
        """The upstream's API key from the environment (`os.environ` unless `environ`).

        `None` when the upstream needs no key (`api_key_env` unset) or the variable is unset
        or empty.

        Raises:
            UpstreamNotFound: unknown upstream.
        """
        variable = self.upstream(upstream_name).api_key_env
        if variable is None:
            return None
        value = (os.environ if environ is None else environ).get(variable)
        return value or None

    def upstreams_without_key(self, *, environ: Mapping[str, str] | None = None) -> list[Upstream]:
        """The upstreams whose `api_key_env` names a variable that is unset or empty in the
        environment (`os.environ` unless `environ`): their models are called without a key."""
        return [
            upstream
            for upstream in self.upstreams.values()
            if upstream.api_key_env is not None
            and self.upstream_api_key(upstream.name, environ=environ) is None
        ]


_T = TypeVar("_T")


def _get(
    items: Mapping[str, _T], name: str, error: type[CatalogError], what: str, field_name: str
) -> _T:
    """`items[name]`, or `error` naming the missing `what`."""
    try:
        return items[name]
    except KeyError:
        raise error(f"{what} {name!r} does not exist", **{field_name: name}) from None


def _scaled(base: int, multiplier: Decimal) -> int:
    """`base * multiplier`, rounded down, at least 1."""
    return max(1, int(Decimal(base) * multiplier))
