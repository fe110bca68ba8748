"""Garbage-collector settings of a serving process.

CPython frees almost everything by reference counting; its cyclic collector only finds
objects in reference cycles, and runs whenever the count of container objects allocated minus
those freed passes a threshold (700 for the youngest generation, by default). A gateway under
load keeps tens of thousands of objects alive for calls in flight (coroutines, futures, the
call's own records) and makes and frees them all the time, so that count passes 700 every few
calls: the collector then walks objects that are all still alive, and promotes them into the
older generations, whose collections walk them again. Measured on the gateway (SQLite, 32
connections, ~2,600 calls/s, 10 s): ~3,200 young, ~300 middle and ~27 full collections took
1.3 s of event-loop time, ~40 us a call, and none of them found garbage (a census with
`gc.DEBUG_SAVEALL` found no unreachable object in a second of load).

`tune_collector` therefore:

- moves everything alive at start-up (modules, classes, functions, the catalog) to the
  permanent generation (`gc.freeze`), so a full collection walks only what requests created
  since (such a collection was a 50-80 ms pause with them);
- raises the thresholds to `COLLECTOR_THRESHOLDS`, so the collector runs every
  `YOUNG_THRESHOLD` net allocations: a few times a minute at the rate above, or sooner if
  code makes cycles, whose garbage is then bounded by that count (some tens of MB at most).

See the `gc` module's documentation (`gc.set_threshold`, `gc.freeze`).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Net container allocations between two collections of the youngest generation."""

COLLECTOR_THRESHOLDS = (YOUNG_THRESHOLD, 20, 10)
"""`gc.set_threshold` arguments: the youngest generation's, then how many collections of
each generation run before the next older one is collected."""


def tune_collector() -> None:
    """Collect once, freeze the surviving start-up heap, and set `COLLECTOR_THRESHOLDS`.

    Call once the process is ready to serve (imports done, runtime started)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
