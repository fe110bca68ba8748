"""A catalog's cross-references, checked after its schema: every plan, category, model,
upstream and session product a catalog names exists, each model's upstreams are valid and
speak one protocol, and each model is served on some route (`catalog.routes`).

Problems are added to the loader's collector, except where the schema already found one
(a wrong value is reported once, by its first fault).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from tollhouse import money
from tollhouse.catalog.routes import CATEGORY_ROUTES, PROTOCOL_ROUTES, routes_for
from tollhouse.catalog.schemas import STANDARD_METERS

Loc = tuple[str | int, ...]


class Problems(Protocol):
    """Where problems go (the loader's collector)."""

    def add(self, loc: Loc, msg: str) -> None: ...


def check_references(
    data: Mapping[str, Any], problems: Problems, schema_locs: Iterable[Loc]
) -> None:
    """Add every cross-reference problem of the catalog `data` to `problems`, except under a
    key path in `schema_locs` (where the schema found one)."""
    _check_references(data, _Semantic(problems, schema_locs))


class _Semantic:
    """Adds cross-reference problems to `problems`, except at a key path where the schema
    found one (`schema_locs`, or under one): a wrong value is reported once, by its first
    fault."""

    def __init__(self, problems: Problems, schema_locs: Iterable[Loc]) -> None:
        self.problems = problems
        self.structural = [tuple(str(part) for part in loc) for loc in schema_locs]

    def add(self, loc: Loc, msg: str) -> None:
        path = tuple(str(part) for part in loc)
        if not any(path[: len(known)] == known for known in self.structural):
            self.problems.add(loc, msg)


def _section(data: Mapping[str, Any], key: str) -> Mapping[Any, Any] | None:
    """`data[key]` when it is a mapping (absent = empty); `None` when it is something else
    (the schema reports that, and nothing can be looked up in it)."""
    value = data.get(key)
    if value is None:
        return {}
    return value if isinstance(value, Mapping) else None


def _entries(section: Mapping[Any, Any] | None) -> Iterable[tuple[Any, Mapping[str, Any]]]:
    """The `(name, mapping)` entries of a section; entries of another type are skipped."""
    for name, value in (section or {}).items():
        if isinstance(value, Mapping):
            yield name, value


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _check_references(data: Mapping[str, Any], problems: _Semantic) -> None:
    """Cross-references the schema cannot see: names that must exist, unique ranks.

    Reads the raw document (not the validated spec), so that a schema error elsewhere hides
    none of these: a typo'd key in one model still lets a duplicate rank and an unknown
    category be reported. A section that is not a mapping is not looked up in.
    """
    plans, categories = _section(data, "plans"), _section(data, "categories")
    upstreams, models = _section(data, "upstreams"), _section(data, "models")
    meters = STANDARD_METERS if data.get("meters") is None else _section(data, "meters")
    default_plan = _name(data.get("default_plan", "free"))
    if plans is not None and "plans" in data and not plans:
        problems.add(("plans",), "at least one plan is required")
    elif plans and default_plan is not None and default_plan not in plans:
        problems.add(("default_plan",), _unknown("plan", default_plan, plans))
    ranks: dict[int, Any] = {}
    for name, plan in _entries(plans):
        quotas = plan.get("quotas")
        for meter in quotas if isinstance(quotas, Mapping) else ():
            if meters is not None and meter not in meters:
                problems.add(("plans", name, "quotas", meter), _unknown("meter", meter, meters))
        tiers = plan.get("resource_tiers")
        rates = plan.get("session_rates")
        if isinstance(tiers, list) and isinstance(rates, Mapping):
            for tier in rates:
                if tier not in tiers:
                    problems.add(
                        ("plans", name, "session_rates", tier),
                        f"resource tier {tier!r} is not in the plan's resource_tiers",
                    )
        rank = plan.get("rank")
        if not isinstance(rank, int) or isinstance(rank, bool):
            continue
        if rank in ranks:
            problems.add(
                ("plans", name, "rank"), f"rank {rank} is also used by plan {ranks[rank]!r}"
            )
        else:
            ranks[rank] = name
    references = (("category", categories), ("upstream", upstreams), ("min_plan", plans))
    for model_id, model in _entries(models):
        for field, known in references:
            wanted = _name(model.get(field))
            if wanted is not None and known is not None and wanted not in known:
                kind = "plan" if field == "min_plan" else field
                problems.add(("models", model_id, field), _unknown(kind, wanted, known))
        _check_model_upstreams(model_id, model, upstreams, problems)
        _check_served(model_id, model, upstreams, problems)
    _check_session_products(data, models, categories, problems)
    _check_credit_packs(data, problems)


def _check_model_upstreams(
    model_id: Any,
    model: Mapping[str, Any],
    upstreams: Mapping[Any, Any] | None,
    problems: _Semantic,
) -> None:
    """A model names `upstream` or `upstreams` (exactly one of them); each entry of
    `upstreams` names an existing upstream, once per upstream model name, and all of them
    speak the protocol of the first."""
    loc: Loc = ("models", model_id)
    entries = model.get("upstreams")
    if "upstream" in model and "upstreams" in model:
        problems.add((*loc, "upstreams"), "give either 'upstream' or 'upstreams', not both")
    elif "upstream" not in model and "upstreams" not in model:
        problems.add(loc, "needs 'upstream' (one upstream) or 'upstreams' (fallback upstreams)")
    if not isinstance(entries, list):
        return
    default_model = _name(model.get("upstream_model")) or str(model_id)
    first: tuple[str, Any] | None = None
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        name = _name(entry.get("upstream")) if isinstance(entry, Mapping) else None
        if name is None:
            continue
        if upstreams is not None and name not in upstreams:
            problems.add(
                (*loc, "upstreams", index, "upstream"), _unknown("upstream", name, upstreams)
            )
            continue
        pair = (name, _name(entry.get("model")) or default_model)
        if pair in seen:
            problems.add(
                (*loc, "upstreams", index),
                f"upstream {name!r} with model {pair[1]!r} is listed twice (entry {seen[pair]})",
            )
        seen.setdefault(pair, index)
        spec = (upstreams or {}).get(name)
        protocol = spec.get("protocol", "openai") if isinstance(spec, Mapping) else None
        if first is None:
            first = (name, protocol)
        elif protocol != first[1]:
            problems.add(
                (*loc, "upstreams", index, "upstream"),
                f"upstream {name!r} speaks {protocol!r} but {first[0]!r} (the first) speaks "
                f"{first[1]!r}: a model's upstreams must speak one protocol",
            )


def _check_served(
    model_id: Any,
    model: Mapping[str, Any],
    upstreams: Mapping[Any, Any] | None,
    problems: _Semantic,
) -> None:
    """A model on an OpenAI or Anthropic upstream is served on some gateway route: its
    category allows a route kind its (first) upstream's protocol speaks (`catalog.routes`)."""
    entries = model.get("upstreams")
    first = entries[0] if isinstance(entries, list) and entries else None
    upstream_name = _name(first.get("upstream") if isinstance(first, Mapping) else None)
    upstream_name = upstream_name or _name(model.get("upstream"))
    category = _name(model.get("category"))
    upstream = (upstreams or {}).get(upstream_name)
    if category is None or not isinstance(upstream, Mapping):
        return
    protocol = upstream.get("protocol", "openai")
    if protocol not in PROTOCOL_ROUTES or protocol == "http":
        return
    if not routes_for(category, protocol):
        allowed = ", ".join(sorted(CATEGORY_ROUTES.get(category, ())))
        problems.add(
            ("models", model_id, "upstream"),
            f"a {category!r} model (routes: {allowed}) cannot be served by upstream "
            f"{upstream_name!r}, which speaks {protocol!r} (routes: "
            f"{', '.join(sorted(PROTOCOL_ROUTES[protocol]))})",
        )


def _check_session_products(
    data: Mapping[str, Any],
    models: Mapping[Any, Any] | None,
    categories: Mapping[Any, Any] | None,
    problems: _Semantic,
) -> None:
    """Each session product covers something (a model or a category) that exists, and sells
    each pack size once."""
    for name, product in _entries(_section(data, "session_products")):
        loc: Loc = ("session_products", name)
        covered = [product.get("models"), product.get("categories")]
        if not any(isinstance(items, list) and items for items in covered):
            problems.add(loc, "a session product must list at least one model or category")
        for field, known in (("models", models), ("categories", categories)):
            items = product.get(field)
            for index, item in enumerate(items if isinstance(items, list) else ()):
                wanted = _name(item)
                if wanted is not None and known is not None and wanted not in known:
                    kind = "model" if field == "models" else "category"
                    problems.add((*loc, field, index), _unknown(kind, wanted, known))
        packs = product.get("packs")
        sizes: set[Any] = set()
        for index, pack in enumerate(packs if isinstance(packs, list) else ()):
            size = pack.get("sessions") if isinstance(pack, Mapping) else None
            if isinstance(size, int) and size in sizes:
                problems.add(
                    (*loc, "packs", index, "sessions"), f"a pack of {size} is listed twice"
                )
            sizes.add(size)


def _check_credit_packs(data: Mapping[str, Any], problems: _Semantic) -> None:
    """Each credit pack's price is a whole number of the currency's minor unit (a payment
    provider charges no fraction of a cent)."""
    currency = data.get("currency", "usd")
    if not isinstance(currency, str):
        return
    for name, pack in _entries(_section(data, "credit_packs")):
        try:
            money.to_minor_units(money.to_micros(str(pack.get("price"))), currency)
        except ValueError:
            digits = money.minor_unit_digits(currency)
            problems.add(
                ("credit_packs", name, "price"),
                f"must be a whole number of {currency} minor units ({digits} decimals at most)",
            )


def _unknown(kind: str, name: str, known: Iterable[Any]) -> str:
    names = ", ".join(sorted(str(item) for item in known)) or "none"
    return f"unknown {kind} {name!r} (known: {names})"
