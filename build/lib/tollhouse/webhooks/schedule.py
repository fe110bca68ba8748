"""When a failed delivery is tried again, and when an endpoint is given up on.

Retry schedule (Standard Webhooks, "Retry schedule" in its spec, the schedule it suggests):
the first attempt at once, then after each failure wait

    5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h

each delay multiplied by a random factor uniform in [1, 1 + JITTER) (jitter: deliveries that
failed together, when an endpoint went down, do not all come back in the same second; upward
only, so the schedule never shrinks). 8 attempts in all, spanning at least 27 h 35 min 5 s
from the first (so at least 24 h), at most 1.2 times that. The attempt after the last delay
failing makes the delivery `failed`.

A 2xx answer is success; any other status (3xx included: redirects are not followed), a
timeout or a connection error is a failure.

Disabling (Svix's rule, the reference implementation's service): an endpoint whose attempts
have all failed for `DISABLE_AFTER_SECONDS` (5 days, from its first failed attempt since its
last success) is disabled at its next failed attempt, with the reason recorded. It takes no
new deliveries and its pending ones wait until the operator enables it again.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

RETRY_DELAYS_SECONDS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
"""Seconds to wait after the 1st, 2nd, ... failed attempt before the next."""
MAX_ATTEMPTS = len(RETRY_DELAYS_SECONDS) + 1
"""Scheduled attempts of a delivery: 8."""
JITTER = 0.2
"""Each delay is stretched by up to this fraction, at random."""
DISABLE_AFTER_SECONDS = 5 * 24 * 3600
"""An endpoint failing every attempt this long is disabled."""


def next_attempt_at(failed_attempts: int, now: datetime, rng: random.Random) -> datetime | None:
    """When to try again after the `failed_attempts`-th attempt (1-based) failed at `now`:
    `now + RETRY_DELAYS_SECONDS[failed_attempts - 1] x uniform[1, 1 + JITTER)`; None once
    `failed_attempts` >= `MAX_ATTEMPTS` (the delivery has failed)."""
    if failed_attempts >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS_SECONDS[max(failed_attempts, 1) - 1]
    return now + timedelta(seconds=delay * (1 + JITTER * rng.random()))


def disable_cutoff(now: datetime) -> datetime:
    """An endpoint whose `failing_since` is at or before this, failing again at `now`, is
    disabled."""
    return now - timedelta(seconds=DISABLE_AFTER_SECONDS)
