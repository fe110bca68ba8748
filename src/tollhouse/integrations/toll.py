"""One unit of an application's work, authorized and then settled: the sidecar's protocol
(`POST /v1/authorize`, capture or void, `POST /v1/usage/events`) in a few calls.

`Toll.authorize` checks the caller's tollhouse key and what the work needs (a model and the
most it will use, plan features, a resource tier; a session when the model requires one)
and holds the estimate's price; `Toll.settle` then captures the price of what the work
really used (at most the hold) and records its usage events when it succeeded, or voids the
hold when it failed. `LocalToll` runs this against an in-process tollhouse (`Runtime`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Protocol

from tollhouse.api.routes.sidecar import AuthorizeIn, UsageEstimate, authorize_for
from tollhouse.catalog import Price, Usage
from tollhouse.errors import Unauthenticated
from tollhouse.gateway.quotas import quantities
from tollhouse.gateway.settle import until_written
from tollhouse.ids import new_id
from tollhouse.ledger import HoldNotOpen
from tollhouse.metering import UsageEventIn
from tollhouse.server.runtime import Runtime


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a unit of work needs: `model` (a catalog model id: its price, rate-limit
    category, plan access and session rule), `usage` (the most it will use: `requests`,
    `input_tokens`, `output_tokens`, `images`, `characters`; its price is held),
    `features` the plan must have, and the `resource_tier` it runs on."""

    model: str
    usage: Mapping[str, int] = field(default_factory=lambda: {"requests": 1})
    features: Sequence[str] = ()
    resource_tier: str | None = None

    def __post_init__(self) -> None:
        usage_of(self.usage)  # a wrong quantity fails where the requirement is written


def usage_of(quantities: Mapping[str, int]) -> Usage:
    """A requirement's `usage` as a `Usage` (absent quantities 0, `requests` 1).

    Raises:
        ValueError: a quantity tollhouse does not hold for (`requests`, `input_tokens`,
            `output_tokens`, `images`, `characters`), or a negative one.
    """
    unknown = set(quantities) - {"requests", "input_tokens", "output_tokens", "images",
                                 "characters"}  # fmt: skip
    if unknown:
        raise ValueError(f"usage has no {sorted(unknown)}")
    return Usage(
        requests=quantities.get("requests", 1),
        input_tokens=quantities.get("input_tokens", 0),
        output_tokens=quantities.get("output_tokens", 0),
        images=quantities.get("images", 0),
        characters=quantities.get("characters", 0),
    )


@dataclass(slots=True)
class Work:
    """An authorized unit of work: `id` is its hold's (a request retried with its
    `Idempotency-Key` is the same work, recorded once), or new. `hold_id` is None when nothing was held (a session pays,
    or the estimate costs nothing); `session_id` names the session that pays. `headers` are
    the rate-limit, low-credit and session headers for the caller's response.

    Call `use(...)` with what the work really used (default: the estimate) before it is
    settled: a batch held for N items and done for M < N is charged for M."""

    id: str
    customer_id: str
    key_id: str | None
    """The caller's key (None when a remote tollhouse authorized it)."""
    model: str
    estimate: Usage
    held_micros: int
    hold_id: str | None
    session_id: str | None
    headers: dict[str, str]
    used: Usage | None = None
    kept: bool = False
    """The application settles it (`keep`), not the middleware."""

    def keep(self) -> None:
        """The work outlives the response (a queued job): the middleware leaves it, and the
        application calls `await toll.settle(work, succeeded=...)` when the job ends, before
        the hold expires (the settings' `upstream_timeout_seconds` plus a minute; then the
        sweeper voids it and the work is free)."""
        self.kept = True

    def use(
        self,
        *,
        requests: int = 1,
        input_tokens: int = 0,
        output_tokens: int = 0,
        images: int = 0,
        characters: int = 0,
    ) -> None:
        """Report what the work used (counts in the meters' units); it is charged at the
        model's price, up to the amount held. Raises ValueError on a negative quantity."""
        self.used = Usage(
            requests=requests, input_tokens=input_tokens, output_tokens=output_tokens,
            images=images, characters=characters,
        )  # fmt: skip


def settlement(work: Work, price: Price, meters: Collection[str]) -> tuple[int, dict[str, int]]:
    """What settling `work` after success charges, in micros (the `price` of what it used,
    or of its estimate; 0 when a session pays), and the meters it moved among `meters` (the
    catalog's): `api_calls` 1 and each nonzero quantity. The capture is this charge up to the
    amount held."""
    used = work.used or work.estimate
    cost = 0 if work.session_id is not None else price.cost(used)
    moved = {**quantities(used), "api_calls": 1}
    return cost, {meter: value for meter, value in moved.items() if meter in meters}


class Toll(Protocol):
    """Authorizes and settles units of work (in-process: `LocalToll`)."""

    async def authorize(
        self, key: str, requirement: Requirement, *, idempotency_key: str | None = None
    ) -> Work:
        """Authorize `requirement` for the holder of `key` and hold its estimated price.

        Raises:
            TollhouseError: the problem a tollhouse route would answer (401 bad key, 403
                model/feature/tier not in plan, 402 credits or session, 429 rate limit or
                quota), nothing held.
        """
        ...

    async def settle(self, work: Work, *, succeeded: bool) -> None:
        """Capture what `work` used and record its usage (`succeeded`), or void its hold."""
        ...

    async def customer_of(self, key: str) -> str:
        """The customer id of a customer's key (to show a caller only its own jobs).

        Raises:
            Unauthenticated: an unknown, revoked or expired key, or an operator's key.
        """
        ...


class LocalToll:
    """`Toll` against an in-process tollhouse: the `runtime` of the application's lifespan
    (started and stopped by it)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def authorize(
        self, key: str, requirement: Requirement, *, idempotency_key: str | None = None
    ) -> Work:
        runtime = self.runtime
        principal = await runtime.authenticator.authenticate(key)
        body = AuthorizeIn(
            model=requirement.model,
            usage=UsageEstimate(**requirement.usage),
            idempotency_key=idempotency_key,
            features=list(requirement.features),
            resource_tier=requirement.resource_tier,
        )
        authorized = await authorize_for(runtime, principal, body)
        answer = authorized.answer
        hold = answer.hold
        return Work(
            id=hold.id if hold is not None else new_id("work"),  # a replay is the same work
            customer_id=answer.customer_id,
            key_id=principal.key_id,
            model=answer.model,
            estimate=usage_of(requirement.usage),
            held_micros=answer.amount_micros,
            hold_id=hold.id if hold is not None else None,
            session_id=answer.session.id if answer.session is not None else None,
            headers=dict(answer.headers),
        )

    async def customer_of(self, key: str) -> str:
        principal = await self.runtime.authenticator.authenticate(key)
        if principal.customer_id is None:
            raise Unauthenticated("use a customer's key")
        return principal.customer_id

    async def settle(self, work: Work, *, succeeded: bool) -> None:
        """On success: capture the price of `work.used` (or the estimate) up to the hold,
        retried until written (`gateway.settle.until_written`: the capture is idempotent),
        and record one usage event per meter it moved (ids `<work id>:<meter>`); a session's
        work is not charged and counts toward the session. On failure: void the hold."""
        runtime = self.runtime
        hold_id = work.hold_id
        if not succeeded:
            if hold_id is not None:
                with contextlib.suppress(HoldNotOpen):  # expired: the sweeper released it
                    await until_written(partial(runtime.ledger.void, hold_id), f"void {hold_id}")
            return
        catalog = runtime.catalog
        cost, moved = settlement(work, catalog.model(work.model).price, catalog.meters)
        charged = min(cost, work.held_micros)
        if hold_id is not None:
            capture = partial(runtime.ledger.capture, hold_id, charged)
            try:
                await until_written(capture, f"capture of {hold_id}")
            except HoldNotOpen:  # it expired first: the sweeper released it
                charged = 0
        now = runtime.clock.now()
        events = [
            UsageEventIn(
                id=f"{work.id}:{meter}", customer_id=work.customer_id, meter=meter,
                value=value, occurred_at=now, key_id=work.key_id, model=work.model,
                session_id=work.session_id,
                properties={"cost_micros": charged, "uncaptured_micros": cost - charged},
            )
            for meter, value in moved.items()
        ]  # fmt: skip
        await runtime.recorder.record(events)
        runtime.quotas.invalidate(work.customer_id)
        if work.session_id is not None:
            runtime.sessions.invalidate(work.customer_id)
