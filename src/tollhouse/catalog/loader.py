"""Load a catalog YAML into a `Catalog`, reporting every problem with its key path.

Steps: read the file, parse YAML (floats keep their source text exactly, duplicate keys are
errors), validate against `CatalogSpec` (unknown keys are errors), check cross-references,
then convert dollars to micros. Duplicate keys, schema errors and cross-reference errors are
found in one pass (the references are checked on the raw document, so a typo'd key hides no
duplicate rank or unknown category); only a YAML syntax error stops the check early. Any
failure raises one `CatalogInvalid` whose `errors` list every problem, in document order, as
`{"loc": "models.gpt-4o.price.per_image", "msg": "..."}` and whose `detail` has one line per
problem, `<loc>: <msg> (line N)`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, NoReturn, TypeVar

import yaml
from pydantic import ValidationError

from tollhouse import money
from tollhouse.catalog.catalog import (
    BUILTIN_SOURCE,
    Catalog,
    Category,
    ComputeSessions,
    Meter,
    Model,
    Plan,
    RolloverPolicy,
    SessionPack,
    SessionProduct,
    Upstream,
)
from tollhouse.catalog.errors import CatalogInvalid
from tollhouse.catalog.packs import CreditPack
from tollhouse.catalog.pricing import Price
from tollhouse.catalog.references import check_references
from tollhouse.catalog.routes import Protocol, routes_for
from tollhouse.catalog.schemas import (
    STANDARD_METERS,
    CatalogSpec,
    CreditPackSpec,
    ModelSpec,
    PlanSpec,
    PriceSpec,
    SessionProductSpec,
)
from tollhouse.catalog.tokenizers import DEFAULT_TOKENIZER, Tokenizer, tokenizer_for
from tollhouse.catalog.upstreams import ModelUpstream, by_priority

BUILTIN_RESOURCE = "builtin.yaml"
PRESETS = ("llm-api", "image-api", "analysis-sessions", "compute", "jobs")
"""The catalogs `tollhouse init --preset` writes, one per common product shape (`presets/`)."""


Loc = tuple[str | int, ...]
T = TypeVar("T")


class _Problems:
    """Collected `(loc, msg)` pairs, rendered into one `CatalogInvalid`; `root` (the parsed
    YAML nodes, once known) gives each its line."""

    def __init__(self, source: str, root: yaml.Node | None = None) -> None:
        self.source = source
        self.root = root
        self.items: list[tuple[Loc, str, int | None]] = []

    def add(self, loc: Loc, msg: str, *, line: int | None = None) -> None:
        """Record a problem; `line` (1-based) defaults to where `loc` is in the document."""
        self.items.append((loc, msg, line))

    def raise_if_any(self) -> None:
        if self.items:
            raise self.error()

    def error(self) -> CatalogInvalid:
        """Every problem, in document order where the lines are known (structural and
        semantic problems interleaved), else in the order found."""
        located = [
            (loc, msg, line if line is not None or self.root is None else _line_of(self.root, loc))
            for loc, msg, line in self.items
        ]
        located.sort(key=lambda item: item[2] or 0)
        errors: list[dict[str, str]] = []
        lines: list[str] = []
        for loc, msg, line in located:
            path = ".".join(str(part) for part in loc)
            errors.append({"loc": path, "msg": msg})
            where = f" (line {line})" if line is not None and loc else ""
            lines.append(f"  {path or '<file>'}: {msg}{where}")
        count = f"{len(errors)} error" + ("s" if len(errors) != 1 else "")
        detail = f"catalog {self.source} is invalid ({count}):\n" + "\n".join(lines)
        return CatalogInvalid(detail, errors=errors, source=self.source)


class _CatalogLoader(yaml.SafeLoader):
    """SafeLoader whose floats are exact `Decimal`s taken from the source text."""


def _construct_exact_float(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    assert isinstance(node, yaml.ScalarNode)
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return loader.construct_yaml_float(node)  # .inf, .nan, 1:30.5: not exact decimals
    return value if value.is_finite() else loader.construct_yaml_float(node)


_CatalogLoader.add_constructor("tag:yaml.org,2002:float", _construct_exact_float)


def _line_of(root: yaml.Node, loc: Loc) -> int | None:
    """1-based line of the deepest node on `loc` (the key itself when it is the last part)."""
    node = root
    line: int | None = node.start_mark.line + 1
    for part in loc:
        if not isinstance(node, yaml.MappingNode):
            break
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                line = key.start_mark.line + 1
                node = value
                break
        else:
            break
    return line


def _duplicate_keys(node: yaml.Node, loc: Loc, problems: _Problems, seen: set[int]) -> None:
    """Report mapping keys given twice (YAML loaders silently keep the last one)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in keys:
                    problems.add(
                        (*loc, key.value),
                        f"duplicate key (first defined at line {keys[key.value]})",
                        line=key.start_mark.line + 1,
                    )
                else:
                    keys[key.value] = key.start_mark.line + 1
                _duplicate_keys(value, (*loc, key.value), problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _duplicate_keys(item, (*loc, index), problems, seen)


def _parse(text: str, problems: _Problems) -> Any:
    """YAML text -> python data; duplicate keys are added to `problems` (the document is
    still built, the last value winning, so that every other problem is found too).

    Raises:
        CatalogInvalid: YAML syntax errors (nothing else can be checked then).
    """
    loader = _CatalogLoader(text)
    try:
        root = loader.get_single_node()
        problems.root = root
        if root is not None:
            _duplicate_keys(root, (), problems, set())
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        syntax = _Problems(problems.source)
        syntax.add((), f"YAML syntax error: {where}{problem}")
        raise syntax.error() from exc
    except yaml.YAMLError as exc:
        syntax = _Problems(problems.source)
        syntax.add((), f"YAML error: {exc}")
        raise syntax.error() from exc
    finally:
        loader.dispose()
    return data


def _validate(data: Any, problems: _Problems) -> CatalogSpec:
    """Check `data` against the schema and the cross-references in one pass.

    Raises:
        CatalogInvalid: every problem found, structural and semantic together (with any
            already in `problems`).
    """
    if data is None or not isinstance(data, dict):
        shape = "empty" if data is None else f"a {type(data).__name__}, not a mapping of keys"
        problems.add((), f"the catalog is {shape}")
        raise problems.error()
    spec: CatalogSpec | None = None
    schema_locs: list[Loc] = []
    try:
        spec = CatalogSpec.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            schema_locs.append(tuple(error["loc"]))
            problems.add(tuple(error["loc"]), error["msg"])
    check_references(data, problems, schema_locs)
    problems.raise_if_any()
    assert spec is not None
    return spec


def _frozen(items: dict[str, T]) -> Mapping[str, T]:
    return MappingProxyType(items)


def _price(spec: PriceSpec) -> Price:
    return Price.from_dollars(
        per_request=spec.per_request,
        input_per_1m_tokens=spec.input_per_1m_tokens,
        output_per_1m_tokens=spec.output_per_1m_tokens,
        per_image=spec.per_image,
        per_audio_second=spec.per_audio_second,
        per_1m_characters=spec.per_1m_characters,
    )


def _plan(name: str, p: PlanSpec) -> Plan:
    return Plan(
        name=name,
        rank=p.rank,
        price_micros=money.to_micros(p.price),
        interval=p.interval,
        trial_days=p.trial_days,
        rate_limit_multiplier=p.rate_limit_multiplier,
        included_credits_micros=money.to_micros(p.included_credits),
        features=frozenset(p.features),
        description=p.description,
        quotas=_frozen(dict(p.quotas)),
        resource_tiers=frozenset(p.resource_tiers),
        session_rates=_frozen({tier: money.to_micros(r) for tier, r in p.session_rates.items()}),
        max_in_flight=p.max_in_flight,
        rollover=None
        if p.rollover is None
        else RolloverPolicy(
            cap_micros=None if p.rollover.cap is None else money.to_micros(p.rollover.cap)
        ),
    )


def _session_product(name: str, p: SessionProductSpec) -> SessionProduct:
    return SessionProduct(
        name=name,
        price_micros=money.to_micros(p.price),
        duration_seconds=p.duration,
        max_tokens=p.max_tokens,
        models=frozenset(p.models),
        categories=frozenset(p.categories),
        required=p.required,
        packs=tuple(SessionPack(pack.sessions, money.to_micros(pack.price)) for pack in p.packs),
        description=p.description,
    )


def _credit_pack(name: str, p: CreditPackSpec) -> CreditPack:
    return CreditPack(
        name=name,
        price_micros=money.to_micros(p.price),
        credits_micros=money.to_micros(p.price if p.credits is None else p.credits),
        bonus_micros=money.to_micros(p.bonus),
        bonus_expiry_days=p.bonus_expiry_days,
        description=p.description,
    )


def _tokenizer(model_id: str, spec: ModelSpec, upstream_model: str) -> Tokenizer:
    """The YAML's `tokenizer`, else the family of `upstream_model` (the first upstream's
    name of the model), then of the id."""
    return (
        spec.tokenizer
        or tokenizer_for(upstream_model)
        or tokenizer_for(model_id)
        or DEFAULT_TOKENIZER
    )


def _model_upstreams(model_id: str, spec: ModelSpec) -> tuple[ModelUpstream, ...]:
    """The model's upstreams in YAML order (`upstream` alone is one entry); an entry's
    `model` defaults to the model's `upstream_model`, else its id."""
    default = spec.upstream_model or model_id
    if spec.upstreams is None:
        assert spec.upstream is not None  # checked by `references.check_references`
        return (ModelUpstream(spec.upstream, default),)
    return tuple(
        ModelUpstream(
            entry.upstream,
            entry.model or default,
            weight=entry.weight,
            priority=entry.priority,
            timeout_seconds=entry.timeout_seconds,
        )
        for entry in spec.upstreams
    )


def _model(
    model_id: str, spec: ModelSpec, default_plan: str, protocols: Mapping[str, Protocol]
) -> Model:
    """The model `model_id`; `protocols` maps each upstream to its protocol."""
    upstreams = _model_upstreams(model_id, spec)
    first = upstreams[0]
    return Model(
        id=model_id,
        category=spec.category,
        upstream=first.upstream,
        upstream_model=first.model,
        price=_price(spec.price),
        min_plan=spec.min_plan or default_plan,
        max_output_tokens=spec.max_output_tokens,
        description=spec.description,
        tokenizer=_tokenizer(model_id, spec, first.model),
        upstreams=by_priority(upstreams),
        routes=routes_for(spec.category, protocols[first.upstream]),
    )


def _build(spec: CatalogSpec, *, source: str, digest: str) -> Catalog:
    """A validated spec -> the immutable catalog (dollars -> micros)."""
    meters = STANDARD_METERS if spec.meters is None else spec.meters
    protocols = {name: u.protocol for name, u in spec.upstreams.items()}
    return Catalog(
        source=source,
        digest=digest,
        version=spec.version,
        currency=spec.currency,
        default_plan=spec.default_plan,
        meters=_frozen(
            {
                name: Meter(name, m.aggregation, unit=m.unit, description=m.description)
                for name, m in meters.items()
            }
        ),
        categories=_frozen(
            {
                name: Category(
                    name, c.requests_per_minute, c.tokens_per_minute, c.description, c.burst
                )
                for name, c in spec.categories.items()
            }
        ),
        plans=_frozen({name: _plan(name, p) for name, p in spec.plans.items()}),
        upstreams=_frozen(
            {
                name: Upstream(name, u.base_url, u.api_key_env, u.protocol, u.description)
                for name, u in spec.upstreams.items()
            }
        ),
        models=_frozen(
            {
                model_id: _model(model_id, m, spec.default_plan, protocols)
                for model_id, m in spec.models.items()
            }
        ),
        session_products=_frozen(
            {name: _session_product(name, p) for name, p in spec.session_products.items()}
        ),
        credit_packs=_frozen(
            {name: _credit_pack(name, p) for name, p in spec.credit_packs.items()}
        ),
        compute_sessions=ComputeSessions(
            min_run_seconds=spec.compute_sessions.min_run,
            slice_seconds=spec.compute_sessions.slice,
            heartbeat_timeout_seconds=spec.compute_sessions.heartbeat_timeout,
            low_credit_slices=spec.compute_sessions.low_credit_slices,
        ),
    )


def load_catalog_text(text: str, *, source: str = "<string>") -> Catalog:
    """Parse, validate and build a catalog from YAML text; `source` names it in errors and
    is its `Catalog.source`; its digest is that of the text's UTF-8 bytes.

    Raises:
        CatalogInvalid: syntax, schema or cross-reference errors (all of them, with `loc`).
    """
    return _load(text, shown=source, source=source, digest=_sha256(text.encode("utf-8")))


def _load(text: str, *, shown: str, source: str, digest: str) -> Catalog:
    problems = _Problems(shown)
    return _build(_validate(_parse(text, problems), problems), source=source, digest=digest)


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def load_catalog_data(data: Mapping[str, Any], *, source: str = "<data>") -> Catalog:
    """Validate and build a catalog from already-parsed data (a dict shaped like the YAML).

    Float values are converted through `str()`, so `0.1` is exactly 0.1. The digest is that
    of the data as sorted JSON.

    Raises:
        CatalogInvalid: schema or cross-reference errors.
    """
    digest = _sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8"))
    return _build(_validate(dict(data), _Problems(source)), source=source, digest=digest)


def load_catalog(path: Path | None = None) -> Catalog:
    """Load the catalog at `path`, or the built-in one when `path` is `None`.

    The catalog's `source` is the file's absolute path, its `digest` the SHA-256 of the
    file's bytes.

    Raises:
        CatalogInvalid: unreadable file (missing, a directory, not UTF-8) or invalid catalog.
    """
    if path is None:
        return builtin_catalog()
    path = Path(path)
    try:
        content = path.read_bytes()
        text = content.decode("utf-8")
    except FileNotFoundError:
        _fail_file(path, "file not found")
    except IsADirectoryError:
        _fail_file(path, "is a directory, not a file")
    except UnicodeDecodeError as exc:
        _fail_file(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:
        _fail_file(path, f"cannot read: {exc.strerror or exc}")
    return _load(text, shown=str(path), source=str(path.resolve()), digest=_sha256(content))


def _fail_file(path: Path, msg: str) -> NoReturn:
    problems = _Problems(str(path))
    problems.add((), f"{path}: {msg}")
    raise problems.error()


def validate_catalog_file(path: Path | str) -> Catalog:
    """Load and validate the catalog file at `path` (for the CLI's `validate`).

    Raises:
        CatalogInvalid: as `load_catalog`.
    """
    return load_catalog(Path(path))


def builtin_catalog_text() -> str:
    """The built-in catalog's YAML, shipped as package data."""
    return resources.files("tollhouse.catalog").joinpath(BUILTIN_RESOURCE).read_text("utf-8")


@functools.cache
def builtin_catalog() -> Catalog:
    """The built-in catalog, loaded once per process (it is immutable); its `source` is
    `built-in`."""
    text = builtin_catalog_text()
    return _load(text, shown=BUILTIN_RESOURCE, source=BUILTIN_SOURCE, digest=_sha256(text.encode()))


def preset_text(name: str = "llm-api") -> str:
    """The commented catalog of preset `name` (one of `PRESETS`), as `tollhouse init` writes
    it to `tollhouse.yaml`.

    Raises:
        ValueError: `name` is not a preset.
    """
    if name not in PRESETS:
        raise ValueError(f"no preset '{name}': choose one of {', '.join(PRESETS)}")
    return resources.files("tollhouse.catalog").joinpath(f"presets/{name}.yaml").read_text("utf-8")
