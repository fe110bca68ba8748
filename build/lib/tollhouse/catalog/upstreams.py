"""A model's upstreams and the order the gateway tries them in (fallback upstreams).

A catalog model names one upstream (`upstream: openai`) or several (`upstreams: [...]`); each
entry is a `ModelUpstream`. The rule for one call, `attempt_order`:

1. Entries are grouped by `priority`, lowest first (1 before 2); every entry of a group is
   tried before any entry of the next group.
2. Within a group the order is drawn by weight, without replacement: the first entry is
   entry *i* with probability `weight_i / sum(weights of the group)`, the next is drawn the
   same way among the entries left, and so on. Over many calls an entry of a group is thus
   tried first in `weight / group total` of them (weights 3 and 1: 75 % and 25 %).

A single entry is its own order (nothing is drawn). What makes the gateway move to the next
entry is `gateway/proxy.py`'s to say.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

_RANDOM = random.Random()
"""The draws of `attempt_order` when the caller passes none (seeded from the OS)."""


@dataclass(frozen=True, slots=True)
class ModelUpstream:
    """One upstream a model may be served by: the catalog upstream `upstream`, the model
    name it is asked for (`model`), its `weight` (>= 1) within its `priority` group (>= 1,
    lower tried first), and its own `timeout_seconds` (> 0; `None`: the gateway's
    `upstream_timeout_seconds`)."""

    upstream: str
    model: str
    weight: int = 1
    priority: int = 1
    timeout_seconds: float | None = None


def by_priority(entries: Sequence[ModelUpstream]) -> tuple[ModelUpstream, ...]:
    """`entries` sorted by priority, lowest first, keeping their order within a priority
    (how a `Model` stores them, so `attempt_order` only walks consecutive runs)."""
    return tuple(sorted(entries, key=lambda entry: entry.priority))


def attempt_order(
    entries: tuple[ModelUpstream, ...], rng: random.Random | None = None
) -> tuple[ModelUpstream, ...]:
    """The order in which to try `entries` (sorted `by_priority`) for one call: priority
    groups in order, each group's entries drawn by weight without replacement (the rule in
    the module's docstring). `rng` makes the draws reproducible (default: a process-wide
    generator). One entry comes back as the same tuple, with nothing drawn."""
    if len(entries) == 1:
        return entries
    draw = (rng or _RANDOM).random
    order: list[ModelUpstream] = []
    start = 0
    while start < len(entries):
        end = start
        while end < len(entries) and entries[end].priority == entries[start].priority:
            end += 1
        group = list(entries[start:end])
        total = sum(entry.weight for entry in group)
        while group:
            point = draw() * total
            index = 0
            while index < len(group) - 1 and point >= group[index].weight:
                point -= group[index].weight
                index += 1
            chosen = group.pop(index)
            total -= chosen.weight
            order.append(chosen)
        start = end
    return tuple(order)
