"""Every Prometheus metric tollhouse exports, defined here once (the official
`prometheus_client`), and the functions that move them.

| metric | type | labels | what |
| --- | --- | --- | --- |
| `tollhouse_http_requests_total` | counter | `route`, `method`, `status`, `reason` | answered requests; `route` is the route's template (`/v1/customers/{customer_id}`, `unmatched` for no route), `reason` the problem `code` of a 402, 403 or 429 (a denial), else empty |
| `tollhouse_gateway_added_latency_seconds` | histogram | `route` | what a gateway call spent in tollhouse before its answer started: arrival to the answer's head, minus the time waited on upstreams |
| `tollhouse_upstream_latency_seconds` | histogram | `model` | one upstream attempt: request sent to the answer read (a stream: its head) or failed |
| `tollhouse_ledger_holds_total`, `tollhouse_ledger_hold_micros_total` | counter | `currency` | new holds, and the micros they reserved (replays not counted) |
| `tollhouse_ledger_captures_total`, `tollhouse_ledger_capture_micros_total` | counter | `currency` | captures, and the micros they charged |
| `tollhouse_ledger_voids_total`, `tollhouse_ledger_void_micros_total` | counter | `currency` | voids, and the micros they released |
| `tollhouse_ledger_batch_operations` | histogram | | operations per ledger transaction (group commit) |
| `tollhouse_ledger_commit_duration_seconds` | histogram | | one ledger transaction, first write to commit |
| `tollhouse_usage_events_total` | counter | `outcome` | usage events by outcome: `written`, `duplicate`, `failed` (the caller got the error: the API answered 503, the gateway retries) |
| `tollhouse_denials_dropped_total` | counter | | denial-log rows dropped (a flood, or a failed write) |
| `tollhouse_ratelimit_decisions_total` | counter | `outcome` | rate-limit decisions: `allowed`, `limited`, `backend-unavailable` (Redis down, fail-closed: 503) |
| `tollhouse_webhook_attempts_total` | counter | `outcome` | webhook delivery attempts recorded: `succeeded`, `retrying` (failed, due again), `failed` (failed, given up) |
| `tollhouse_ready` | gauge | `check` | 1 when the readiness check (`database`, `migrations`, `redis`) passes, measured at scrape time |

Money is in micros of `currency` (an integer count, as everywhere in tollhouse). Label
values are bounded: route templates, catalog model ids, currencies, problem codes.

Multi-process mode: when `PROMETHEUS_MULTIPROC_DIR` names a directory (`tollhouse serve
--workers N` makes one, `observability.multiprocess`), each process writes its values to
files there and `exposition` sums them across processes, the dead ones included (counters
keep their totals when a worker is replaced). `prometheus_client` reads the variable when it
is imported, so it must be set before the process imports this module.

The hot path: a gateway call moves about ten values. Labelled children are looked up in
plain dicts (`Children`), built once per label values; in multi-process mode each value is
written to its file at once, with a process id that costs no system call
(`multiprocess.process_id`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Generic, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tollhouse.observability.multiprocess import is_multiprocess, process_id

if TYPE_CHECKING:
    from tollhouse.ledger import HoldView

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The media type of `exposition`'s text (Prometheus' text format)."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Seconds: tollhouse's own work on a call is sub-millisecond to a few milliseconds."""
UPSTREAM_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds: models answer in milliseconds (embeddings) to minutes (long generations)."""
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
"""Operations per ledger transaction (at most the writer's `max_batch`, 512 by default)."""

M = TypeVar("M", Counter, Histogram)

if is_multiprocess():
    # Before any metric is made: the client's multi-process values, with a process id that
    # costs no system call (`multiprocess.process_id`). No value of this process exists yet
    # (every tollhouse metric is made below), so no two writers share a file.
    values.ValueClass = values.MultiProcessValue(process_identifier=process_id)  # type: ignore[no-untyped-call]


class Children(Generic[M]):
    """The children of a labelled metric, made once per label values and then found in a
    dict (cheaper than `metric.labels(...)`, which validates and locks on every call)."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[tuple[str, ...], M] = {}

    def get(self, *values: str) -> M:
        """The child for these label values (in the metric's label order)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


HTTP_REQUESTS = Counter(
    "tollhouse_http_requests",
    "HTTP requests answered, by route template, method, status and denial reason (the "
    "problem code of a 402, 403 or 429).",
    ["route", "method", "status", "reason"],
)
GATEWAY_ADDED_LATENCY = Histogram(
    "tollhouse_gateway_added_latency_seconds",
    "Time a gateway call spent in tollhouse before its answer started, upstream time excluded.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
UPSTREAM_LATENCY = Histogram(
    "tollhouse_upstream_latency_seconds",
    "One upstream attempt, request sent to answer read (a stream's head), by model.",
    ["model"],
    buckets=UPSTREAM_BUCKETS,
)
LEDGER_HOLDS = Counter("tollhouse_ledger_holds", "New holds.", ["currency"])
LEDGER_HOLD_MICROS = Counter(
    "tollhouse_ledger_hold_micros", "Micros reserved by new holds.", ["currency"]
)
LEDGER_CAPTURES = Counter("tollhouse_ledger_captures", "Holds captured.", ["currency"])
LEDGER_CAPTURE_MICROS = Counter(
    "tollhouse_ledger_capture_micros", "Micros charged by captures.", ["currency"]
)
LEDGER_VOIDS = Counter("tollhouse_ledger_voids", "Holds voided.", ["currency"])
LEDGER_VOID_MICROS = Counter(
    "tollhouse_ledger_void_micros", "Micros released by voids.", ["currency"]
)
LEDGER_BATCH_OPERATIONS = Histogram(
    "tollhouse_ledger_batch_operations",
    "Operations per ledger transaction (group commit).",
    buckets=BATCH_BUCKETS,
)
LEDGER_COMMIT_DURATION = Histogram(
    "tollhouse_ledger_commit_duration_seconds",
    "One ledger transaction, first write to commit.",
    buckets=LATENCY_BUCKETS,
)
USAGE_EVENTS = Counter(
    "tollhouse_usage_events",
    "Usage events by outcome: written, duplicate, failed (the caller got the error), "
    "dropped (not written, lost).",
    ["outcome"],
)
DENIALS_DROPPED = Counter("tollhouse_denials_dropped", "Denial-log rows dropped.")
RATELIMIT_DECISIONS = Counter(
    "tollhouse_ratelimit_decisions",
    "Rate-limit decisions: allowed, limited, backend-unavailable (fail-closed).",
    ["outcome"],
)
WEBHOOK_ATTEMPTS = Counter(
    "tollhouse_webhook_attempts",
    "Webhook delivery attempts recorded: succeeded, retrying, failed (given up).",
    ["outcome"],
)

_requests = Children(HTTP_REQUESTS)
_added_latency = Children(GATEWAY_ADDED_LATENCY)
_upstream_latency = Children(UPSTREAM_LATENCY)
_holds = Children(LEDGER_HOLDS)
_hold_micros = Children(LEDGER_HOLD_MICROS)
_captures = Children(LEDGER_CAPTURES)
_capture_micros = Children(LEDGER_CAPTURE_MICROS)
_voids = Children(LEDGER_VOIDS)
_void_micros = Children(LEDGER_VOID_MICROS)
_usage_events = Children(USAGE_EVENTS)

RATE_ALLOWED = RATELIMIT_DECISIONS.labels("allowed")
RATE_LIMITED = RATELIMIT_DECISIONS.labels("limited")
RATE_BACKEND_UNAVAILABLE = RATELIMIT_DECISIONS.labels("backend-unavailable")

WEBHOOK_OUTCOMES = {"succeeded": "succeeded", "pending": "retrying", "failed": "failed"}
"""A delivery's status after an attempt -> the attempt's `outcome` label."""
_webhook_attempts = {
    status: WEBHOOK_ATTEMPTS.labels(outcome) for status, outcome in WEBHOOK_OUTCOMES.items()
}

DENIAL_STATUSES = frozenset({402, 403, 429})
"""The statuses whose problem code is a request's `reason` label."""


def count_request(route: str, method: str, status: int, problem: str | None) -> None:
    """One answered request (`problem`: the code it was answered with, if any)."""
    reason = problem if problem is not None and status in DENIAL_STATUSES else ""
    _requests.get(route, method, str(status), reason).inc()


def observe_added_latency(route: str, seconds: float) -> None:
    """A gateway call's time in tollhouse before its answer started (upstream excluded)."""
    _added_latency.get(route).observe(seconds)


def observe_upstream(model: str, seconds: float) -> None:
    """One upstream attempt for `model` took `seconds`."""
    _upstream_latency.get(model).observe(seconds)


def hold_placed(view: HoldView) -> None:
    """`Ledger.watch_holds` listener: a new hold."""
    _holds.get(view.currency).inc()
    _hold_micros.get(view.currency).inc(view.amount)


def hold_settled(view: HoldView) -> None:
    """`Ledger.watch_settlements` listener: a capture (`captured`) or a void."""
    if view.status == "captured":
        _captures.get(view.currency).inc()
        _capture_micros.get(view.currency).inc(view.captured_amount)
    else:
        _voids.get(view.currency).inc()
        _void_micros.get(view.currency).inc(view.amount)


def ledger_committed(operations: int, seconds: float) -> None:
    """`Ledger.watch_commits` listener: one transaction written."""
    LEDGER_BATCH_OPERATIONS.observe(operations)
    LEDGER_COMMIT_DURATION.observe(seconds)


def usage_events(outcome: str, events: int) -> None:
    """`UsageRecorder.watch` listener."""
    _usage_events.get(outcome).inc(events)


def denials_dropped(denials: int) -> None:
    """`DenialLog.watch_drops` listener."""
    DENIALS_DROPPED.inc(denials)


def webhook_attempt(status: str) -> None:
    """`WebhookWorker.watch` listener: the status an attempt gave its delivery."""
    _webhook_attempts[status].inc()


class _Ready(Collector):
    """`tollhouse_ready`: one readiness result, measured by the scrape that reports it."""

    def __init__(self, checks: Mapping[str, bool]) -> None:
        self.checks = checks

    def collect(self) -> list[Metric]:
        family = GaugeMetricFamily(
            "tollhouse_ready",
            "1 when the readiness check passes (at scrape time).",
            labels=["check"],
        )
        for check, ok in sorted(self.checks.items()):
            family.add_metric([check], 1.0 if ok else 0.0)
        return [family]


def exposition(ready: Mapping[str, bool]) -> bytes:
    """Every metric in Prometheus' text format: this process's, or in multi-process mode
    every process's summed, then `tollhouse_ready` from the `ready` checks."""
    if is_multiprocess():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    checks = CollectorRegistry(auto_describe=False)
    checks.register(_Ready(ready))
    return text + generate_latest(checks)
