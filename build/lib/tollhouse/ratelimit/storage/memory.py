"""In-process GCRA state: a dict of key -> TAT (integer microseconds since the Unix epoch).

Atomicity comes from the event loop: `gcra` never awaits, so one decision runs to completion
before any other task runs. Not thread-safe: use one MemoryStorage per event loop. Limits hold
for this process only; several processes need `RedisStorage`.

Memory stays bounded: at most once per `prune_interval_seconds` (measured on the clock), a
decision first drops every key whose TAT is not after `now` (such a key reads exactly like a
missing one). Live keys are those used within their last window (or still in forced debt).
"""

from __future__ import annotations

from collections.abc import Sequence

from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.ratelimit.storage import Cell, Mode, Outcome, Slot

_US_PER_SECOND = 1_000_000


class MemoryStorage:
    """`Storage` backed by a dict; time from `clock` (default the system clock)."""

    def __init__(self, *, clock: Clock | None = None, prune_interval_seconds: float = 60.0) -> None:
        if prune_interval_seconds <= 0:
            raise ValueError("prune_interval_seconds must be > 0")
        self._clock = clock or SYSTEM_CLOCK
        self._tats: dict[str, int] = {}
        self._slots: dict[str, dict[str, int]] = {}
        """In-flight slots: key -> member -> lease expiry (ms on the clock)."""
        self._prune_interval_us = round(prune_interval_seconds * _US_PER_SECOND)
        self._next_prune_us = self._now_us() + self._prune_interval_us

    def __len__(self) -> int:
        """Number of keys currently held (pruned ones excluded)."""
        return len(self._tats)

    def _now_us(self) -> int:
        return round(self._clock.timestamp() * _US_PER_SECOND)

    async def gcra(self, cells: Sequence[Cell], mode: Mode) -> Outcome:
        """See `Storage.gcra`. Never awaits: atomic within the event loop."""
        now = self._now_us()
        if now >= self._next_prune_us:
            self.prune(now)
        tats = self._tats
        before: list[int] = []
        allowed = True
        for cell in cells:
            stored = tats.get(cell.key, now)
            tat = max(now, stored)
            before.append(tat)
            if tat + cell.increment_us - now > cell.window_us:
                allowed = False
        if mode == "force" or (mode == "hit" and allowed):
            for cell, tat in zip(cells, before, strict=True):
                new_tat = tat + cell.increment_us
                if new_tat > now:
                    tats[cell.key] = new_tat
                else:  # a refund back to now (or before): the key reads as unused
                    tats.pop(cell.key, None)
        return Outcome(allowed=allowed, now_us=now, tats_us=before)

    def prune(self, now_us: int | None = None) -> int:
        """Drop keys whose TAT is not after `now_us` (default: now); returns how many."""
        now = self._now_us() if now_us is None else now_us
        expired = [key for key, tat in self._tats.items() if tat <= now]
        for key in expired:
            del self._tats[key]
        self._next_prune_us = now + self._prune_interval_us
        return len(expired)

    async def take_slot(self, slots: Sequence[Slot], member: str, lease_ms: int) -> int | None:
        """See `Storage.take_slot`. Never awaits: atomic within the event loop."""
        now = self._now_us() // 1000
        for index, slot in enumerate(slots):
            held = self._slots.get(slot.key, {})
            for expired in [m for m, expires in held.items() if expires <= now]:
                del held[expired]
            if len(held) >= slot.cap:
                return index
        for slot in slots:
            self._slots.setdefault(slot.key, {})[member] = now + lease_ms
        return None

    async def give_slot(self, keys: Sequence[str], member: str) -> None:
        """See `Storage.give_slot`."""
        for key in keys:
            held = self._slots.get(key)
            if held is not None:
                held.pop(member, None)
                if not held:
                    del self._slots[key]

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease_ms: int) -> None:
        """See `Storage.renew_slots`."""
        expires = self._now_us() // 1000 + lease_ms
        for key, member in held:
            members = self._slots.get(key)
            if members is not None and member in members:
                members[member] = expires

    async def clear(self, key: str) -> None:
        self._tats.pop(key, None)

    async def close(self) -> None:
        self._tats.clear()
