"""The catalog: plans, model categories, meters, upstreams and models, loaded from YAML.

Invariants:
- A `Catalog` is immutable (frozen objects, read-only mappings in YAML order) and valid:
  every model's `category`, `upstreams` and `min_plan` exist, `default_plan` exists, plan
  ranks are unique. Anything else is rejected at load time with `CatalogInvalid`, whose
  `errors` name each offending key path (`models.gpt-4o.price.input_per_1m_tokens`).
- Money in the YAML is dollars; in a `Catalog` it is integer micros (`price_micros`,
  `included_credits_micros`, `per_request_micros`) or exact `Decimal` micros-per-unit rates.
  No float ever holds money; YAML numbers are converted from their source text.
- `Price.cost` sums every component exactly and rounds once, up, to a whole micro.
- A plan may use a model when its rank is >= the rank of the model's `min_plan`.
- Plan quotas name existing meters; a plan's `session_rates` price only tiers in its
  `resource_tiers`. Entitlement checks (`require_model`, `require_feature`, `require_tier`)
  raise 403 errors whose `required_plan` is the lowest-rank plan that has what is missing.
- Limits are a category's base limits times the plan's multiplier, rounded down, at least 1;
  a `None` multiplier means unlimited.
- Credit packs (`credit_packs`) sell credits: a price (whole cents, or the currency's minor
  unit), the credits it buys, and a bonus that may expire some days after the payment.
- Session products (`session_products`) sell flat sessions: a price, a duration cap in
  seconds, an optional token cap, the models and categories covered (at least one, all
  existing), whether those models require a session, and packs of unique sizes.
- `compute_sessions` sets how metered sessions are held (`ComputeSessions`: minimum run,
  slice, heartbeat timeout, low-credit threshold); absent keys take their defaults.
- A model has one upstream (`upstream`) or several (`upstreams`: fallbacks, all speaking one
  protocol, each upstream model name listed once); `attempt_order` is the order a call tries
  them in: priority groups, lowest first, weighted random within a group. One price per model,
  whichever upstream serves.
- Every model has a `tokenizer` (`cl100k_base` or `o200k_base`), resolved at load time from
  the YAML or the model's name (`catalog.tokenizers`); another name is a `CatalogInvalid`.
- Every model is served somewhere: its `routes` (the gateway route kinds its category allows
  and its upstream's protocol speaks, `catalog.routes`) are not empty, unless its upstream is
  a plain `http` endpoint (metered with the sidecar); a model served nowhere is a
  `CatalogInvalid`.

- The catalog is configuration, loaded once per process from `TOLLHOUSE_CATALOG`, else
  `./tollhouse.yaml`, else the built-in file; `Catalog.digest` is the SHA-256 of its YAML.
- One table, `served_catalogs` (append-only): the catalogs `tollhouse serve` started with,
  the last being the catalog in force. `serve` refuses a catalog that lacks a plan in use;
  writes naming a plan, a model or the currency are checked against the catalog in force
  (`catalog.service.require_in_force`), so a process with another catalog cannot write what
  the served one does not have.
"""

from tollhouse.catalog.catalog import (
    RESOURCE_TIERS,
    Aggregation,
    Catalog,
    Category,
    CategoryLimits,
    ComputeSessions,
    Interval,
    Meter,
    Model,
    Plan,
    ResourceTier,
    RolloverPolicy,
    SessionPack,
    SessionProduct,
    Upstream,
)
from tollhouse.catalog.errors import (
    CatalogError,
    CatalogInvalid,
    CategoryNotFound,
    CreditPackNotFound,
    FeatureNotInPlan,
    ModelNotFound,
    ModelNotInPlan,
    NotInCatalogInForce,
    PlanNotFound,
    PlansInUseMissing,
    ResourceTierNotInPlan,
    SessionProductNotFound,
    UpstreamNotFound,
)
from tollhouse.catalog.loader import (
    PRESETS,
    builtin_catalog,
    builtin_catalog_text,
    load_catalog,
    load_catalog_data,
    load_catalog_text,
    preset_text,
    validate_catalog_file,
)
from tollhouse.catalog.packs import CreditPack
from tollhouse.catalog.pricing import Price, Usage
from tollhouse.catalog.routes import (
    CATEGORY_ROUTES,
    PROTOCOL_ROUTES,
    Protocol,
    RouteKind,
    routes_for,
)
from tollhouse.catalog.schemas import STANDARD_METERS
from tollhouse.catalog.tokenizers import DEFAULT_TOKENIZER, TOKENIZERS, Tokenizer, tokenizer_for
from tollhouse.catalog.upstreams import ModelUpstream, attempt_order

__all__ = [
    "CATEGORY_ROUTES",
    "DEFAULT_TOKENIZER",
    "PRESETS",
    "PROTOCOL_ROUTES",
    "RESOURCE_TIERS",
    "STANDARD_METERS",
    "TOKENIZERS",
    "Aggregation",
    "Catalog",
    "CatalogError",
    "CatalogInvalid",
    "Category",
    "CategoryLimits",
    "CategoryNotFound",
    "ComputeSessions",
    "CreditPack",
    "CreditPackNotFound",
    "FeatureNotInPlan",
    "Interval",
    "Meter",
    "Model",
    "ModelNotFound",
    "ModelNotInPlan",
    "ModelUpstream",
    "NotInCatalogInForce",
    "Plan",
    "PlanNotFound",
    "PlansInUseMissing",
    "Price",
    "Protocol",
    "ResourceTier",
    "ResourceTierNotInPlan",
    "RolloverPolicy",
    "RouteKind",
    "SessionPack",
    "SessionProduct",
    "SessionProductNotFound",
    "Tokenizer",
    "Upstream",
    "UpstreamNotFound",
    "Usage",
    "attempt_order",
    "builtin_catalog",
    "builtin_catalog_text",
    "load_catalog",
    "load_catalog_data",
    "load_catalog_text",
    "preset_text",
    "routes_for",
    "tokenizer_for",
    "validate_catalog_file",
]
