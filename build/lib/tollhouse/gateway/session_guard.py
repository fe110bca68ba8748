"""Flat-session enforcement on the hot path: a per-process view of each customer's active flat
sessions, so a covered call costs dict lookups, not a query.

A model is *covered* by the catalog's session products that list it or its category; it
*requires* a session when one of them is `required`. For a covered call `admit` answers the
customer's usable session of a covering product (time and tokens left), and the call is paid
by that session's fee: no hold, cost 0, its usage events carry the session's id. Without one,
a required model is refused 402 `session-required` (or `session-ended` when the customer's
last session of the product ended), unless that session had `auto_renew`: then a new one is
started (from a pack or the wallet, like any start) and the call goes on in it. A model that
is covered but not required is billed as usual when no session is active.

Counting: a call's real tokens (input + output) are added here by `count` as soon as they are
known (before a whole answer is sent; before a stream's last bytes), so this process refuses
the next call once a cap is reached: the call that crosses the token cap is the last one
allowed. Calls admitted before that one was counted (in flight together) are served too: the
bound on use beyond the cap is what the calls in flight at that moment use. The stored count
is the sum of the session's usage events (`metering.service.session_tokens`); tokens counted
here and not yet stored are kept as `pending` across reloads (a reload racing a write may
count them twice for a moment, refusing early, never late). Once a cap is crossed, `finish`
ends the session in the database (with its `session.ended` event) after the call's usage
events are stored.

Freshness: a customer's view is reloaded every `RELOAD_SECONDS` (tokens counted by other
processes or reported by the sidecar); a customer without a usable session is re-read at most
every `RECHECK_SECONDS`; a start, a termination or recorded sidecar usage drops the view at
once in the process that made it and, through `server.invalidation`, in every other one
within 2 s. Across processes a token cap can thus be passed by what other processes serve
until their counts reach this one (their events stored, at most `RELOAD_SECONDS`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from tollhouse.catalog import Catalog, Model, SessionProduct, Usage
from tollhouse.clock import Clock
from tollhouse.ledger import InsufficientCredit, Ledger
from tollhouse.money import format_micros
from tollhouse.sessions import SessionActive, SessionEnded, SessionRequired, SessionView
from tollhouse.sessions import service as sessions
from tollhouse.singleflight import SingleFlight
from tollhouse.storage import Database

RELOAD_SECONDS = 5.0
"""Longest a customer's view is used before it is read again."""
RECHECK_SECONDS = 1.0
"""Shortest interval between two reads for a customer refused for want of a session."""
RENEW_KEY_PREFIX = "renew:"
"""An auto-renewal's start key: this prefix and the ended session's id (one renewal each)."""


@dataclass(slots=True)
class LiveSession:
    """An active flat session as this process counts it. `tokens` = stored count at the last
    read + `pending` (counted here, not yet stored)."""

    id: str
    customer_id: str
    product: str
    expires_at: datetime | None
    token_cap: int | None
    tokens: int
    auto_renew: bool
    pending: int = 0
    finished: bool = False
    """`finish` ended it in the database (or is doing so)."""

    def exhausted(self) -> bool:
        """True once its tokens reached the cap."""
        return self.token_cap is not None and self.tokens >= self.token_cap

    def usable(self, now: datetime) -> bool:
        """True while it has time and tokens left."""
        expired = self.expires_at is not None and now >= self.expires_at
        return not (expired or self.exhausted() or self.finished)

    def tokens_left(self) -> int | None:
        """Tokens left (None without a token cap)."""
        return None if self.token_cap is None else max(0, self.token_cap - self.tokens)

    def seconds_left(self, now: datetime) -> int | None:
        """Whole seconds left, rounded down (None without a duration cap)."""
        if self.expires_at is None:
            return None
        return max(0, math.floor((self.expires_at - now).total_seconds()))

    def headers(self, now: datetime) -> list[tuple[str, str]]:
        """The response headers of a call it pays for: `x-tollhouse-session-id`, and
        `x-tollhouse-session-tokens-left` and `-seconds-left` for the caps it has."""
        headers = [("x-tollhouse-session-id", self.id)]
        tokens_left = self.tokens_left()
        if tokens_left is not None:
            headers.append(("x-tollhouse-session-tokens-left", str(tokens_left)))
        seconds_left = self.seconds_left(now)
        if seconds_left is not None:
            headers.append(("x-tollhouse-session-seconds-left", str(seconds_left)))
        return headers


@dataclass(slots=True)
class _View:
    loaded_at: float
    live: dict[str, LiveSession] = field(default_factory=dict)
    """Product -> its active session."""
    ended: dict[str, SessionView] = field(default_factory=dict)
    """Product -> its latest ended session (products without an active one)."""


class SessionGuard:
    """Admits calls to models that sessions cover (see the module docstring).

    `on_change(customer_id)` is awaited after this guard changed a customer's sessions (an
    auto-renewal, a session ended at its cap): the runtime tells every process.
    """

    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        *,
        catalog: Catalog,
        clock: Clock,
        on_change: Callable[[str], Awaitable[None]],
    ) -> None:
        self.db = db
        self.ledger = ledger
        self.catalog = catalog
        self.clock = clock
        self.on_change = on_change
        self._covering: dict[str, tuple[SessionProduct, ...]] = {}
        for model in catalog.models.values():
            products = tuple(p for p in catalog.session_products.values() if p.covers(model))
            if products:
                self._covering[model.id] = products
        self._views: dict[str, _View] = {}
        self._loads: SingleFlight[str, _View] = SingleFlight()
        self._renewing: dict[str, asyncio.Future[LiveSession | None]] = {}

    async def admit(self, customer_id: str, model: Model) -> LiveSession | None:
        """The customer's usable session covering `model`, or None when no session product
        covers it, or none is active and none is required.

        Raises:
            SessionRequired: `model` requires a session and the customer never had one of a
                covering product (402).
            SessionEnded: its last session of a covering product ended and none replaced it
                (auto-renewal off, or it could not be paid: the reason is in the detail) (402).
        """
        products = self._covering.get(model.id)
        if products is None:
            return None
        now = self.clock.now()
        view = await self._view(customer_id)
        live = _usable(view, products, now)
        if live is None and self.clock.timestamp() - view.loaded_at >= RECHECK_SECONDS:
            view = await self._view(customer_id, stale=True)
            live = _usable(view, products, now)
        if live is not None or not any(p.required for p in products):
            return live
        renewed = await self._renew(customer_id, view, products)
        if renewed is not None:
            return renewed
        raise self._refusal(view, products, model)

    def count(self, live: LiveSession, usage: Usage) -> None:
        """Add a served call's real tokens (input + output) to its session, at once."""
        tokens = usage.input_tokens + usage.output_tokens
        live.tokens += tokens
        live.pending += tokens

    def stored(self, live: LiveSession, usage: Usage) -> None:
        """The call's usage events (counted by `count`) are stored: no longer pending."""
        live.pending -= usage.input_tokens + usage.output_tokens

    async def finish(self, live: LiveSession) -> None:
        """End `live` in the database if it reached a cap by its stored usage (once its
        crossing call's events are stored), and tell every process."""
        if live.finished or not live.exhausted():
            return
        live.finished = True
        async with self.db.transaction() as session:
            ended = await sessions.end_finished(session, live.customer_id, clock=self.clock)
        if ended:
            await self.on_change(live.customer_id)
        else:
            live.finished = False  # not stored yet: a later call's settlement tries again

    def invalidate(self, customer_id: str) -> None:
        """Read the customer's sessions again on its next covered call."""
        view = self._views.get(customer_id)
        if view is not None:
            view.loaded_at = -math.inf

    async def _view(self, customer_id: str, *, stale: bool = False) -> _View:
        view = self._views.get(customer_id)
        if (
            not stale
            and view is not None
            and self.clock.timestamp() - view.loaded_at < RELOAD_SECONDS
        ):
            return view
        return await self._loads.run(customer_id, lambda: self._load(customer_id, view))

    async def _load(self, customer_id: str, previous: _View | None) -> _View:
        """Read the customer's sessions; a session known before keeps its object (calls in
        flight hold it) and its pending tokens."""
        loaded_at = self.clock.timestamp()
        async with self.db.transaction() as session:
            state = await sessions.flat_sessions(session, customer_id, clock=self.clock)
        known = {live.id: live for live in previous.live.values()} if previous else {}
        view = _View(loaded_at, ended=state.ended)
        for product, stored in state.active.items():
            live = known.get(stored.id)
            if live is None:
                live = LiveSession(
                    id=stored.id,
                    customer_id=customer_id,
                    product=product,
                    expires_at=stored.expires_at,
                    token_cap=stored.token_cap,
                    tokens=stored.tokens_used,
                    auto_renew=stored.auto_renew,
                )
            else:
                live.tokens = stored.tokens_used + live.pending
            view.live[product] = live
        self._views[customer_id] = view
        return view

    async def _renew(
        self, customer_id: str, view: _View, products: tuple[SessionProduct, ...]
    ) -> LiveSession | None:
        """Start the next session of the first covering product whose last session asked
        for auto-renewal and ended at a cap; None when none did. One renewal at a time per
        customer in this process; across processes the start's key (`RENEW_KEY_PREFIX` +
        the ended session's id) makes it one.

        Raises:
            SessionEnded: the renewal could not be paid (detail says why), or the ended
                session's last call is not stored yet (try again).
        """
        previous = _renewable(view, products, self.clock.now())
        if previous is None:
            return None
        pending = self._renewing.get(customer_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LiveSession | None] = asyncio.get_running_loop().create_future()
        self._renewing[customer_id] = future
        try:
            renewed = await self._start_renewal(customer_id, *previous)
            future.set_result(renewed)
            return renewed
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            del self._renewing[customer_id]

    async def _start_renewal(
        self, customer_id: str, product: SessionProduct, ended_id: str
    ) -> LiveSession | None:
        try:
            await sessions.start(
                self.db,
                self.ledger,
                catalog=self.catalog,
                clock=self.clock,
                customer_id=customer_id,
                product=product.name,
                idempotency_key=RENEW_KEY_PREFIX + ended_id,
                auto_renew=True,
            )
        except (InsufficientCredit, SessionActive) as exc:
            why = (
                "its last call is still being recorded: try again"
                if isinstance(exc, SessionActive)
                else f"renewing it failed: {exc.detail}"
            )
            raise SessionEnded(
                f"session {ended_id} of {product.name!r} has ended and {why}",
                session_id=ended_id,
                product=product.name,
                price_micros=product.price_micros,
            ) from None
        await self.on_change(customer_id)
        view = await self._view(customer_id, stale=True)
        return _usable(view, (product,), self.clock.now())

    def _refusal(
        self, view: _View, products: tuple[SessionProduct, ...], model: Model
    ) -> SessionRequired | SessionEnded:
        required = [p for p in products if p.required]
        first = required[0]
        offer = _offer(first, self.catalog.currency)
        for product in required:
            live = view.live.get(product.name)
            last = view.ended.get(product.name)
            if live is not None:
                reason = "tokens" if live.exhausted() else "duration"
                ended_id = live.id
            elif last is not None:
                reason, ended_id = last.end_reason or "terminated", last.id
            else:
                continue
            return SessionEnded(
                f"session {ended_id} of {product.name!r} has ended ({_REASONS[reason]}); "
                f"model {model.id!r} needs an active one: start a new one with "
                f"POST /v1/sessions ({_offer(product, self.catalog.currency)})",
                session_id=ended_id,
                reason=reason,
                product=product.name,
                price_micros=product.price_micros,
                model=model.id,
            )
        return SessionRequired(
            f"model {model.id!r} needs an active {first.name!r} session ({offer}): start "
            "one with POST /v1/sessions",
            product=first.name,
            price_micros=first.price_micros,
            products=[p.name for p in required],
            model=model.id,
        )


_REASONS = {
    "tokens": "its token cap was reached",
    "duration": "its time ran out",
    "terminated": "it was terminated",
}


def _usable(view: _View, products: tuple[SessionProduct, ...], now: datetime) -> LiveSession | None:
    for product in products:
        live = view.live.get(product.name)
        if live is not None and live.usable(now):
            return live
    return None


def _renewable(
    view: _View, products: tuple[SessionProduct, ...], now: datetime
) -> tuple[SessionProduct, str] | None:
    """The first required covering product whose last session asked for auto-renewal and
    ended at a cap (by this process's count or the stored end), with that session's id."""
    for product in products:
        if not product.required:
            continue
        live = view.live.get(product.name)
        if live is not None and live.auto_renew and not live.usable(now):
            return product, live.id
        last = view.ended.get(product.name)
        if (
            live is None
            and last is not None
            and last.auto_renew
            and last.end_reason in ("tokens", "duration")
        ):
            return product, last.id
    return None


def _offer(product: SessionProduct, currency: str) -> str:
    """`1.000000 USD for 24 h or 100000 tokens, whichever ends first`."""
    hours = product.duration_seconds / 3600
    span = f"{hours:g} h" if hours >= 1 else f"{product.duration_seconds} s"
    caps = span if product.max_tokens is None else f"{span} or {product.max_tokens} tokens"
    return f"{format_micros(product.price_micros, currency)} for {caps}, whichever ends first"
