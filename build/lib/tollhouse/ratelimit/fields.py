"""The HTTP header fields of a rate-limit decision: the IETF draft's and the older ones.

Both generations are sent with every answer that went through the limiter (gateway calls,
`POST /v1/authorize`, and their 429 problems):

- The IETF httpapi working group's "RateLimit header fields for HTTP",
  draft-ietf-httpapi-ratelimit-headers-11: two List structured fields (RFC 9651 syntax), one
  item per window of the decision, in the decision's order, named by `Limit.name`:

      RateLimit-Policy: "text-rpm";q=60;w=60, "text-tpm";q=40000;w=60
      RateLimit: "text-rpm";r=59;t=1, "text-tpm";r=39988;t=1

  `q` is the limit's amount; `w` its period in seconds, left out when the period is not a
  whole number of seconds (the draft has no sub-second windows); `r` the units that would pass
  now (`WindowStats.remaining`); `t` the draft's effective window, the seconds within which no
  more than `r` units pass: until GCRA frees the next unit (`WindowStats.effective_window_
  seconds`), rounded up like `Retry-After`, and 0 for a full window. On a denial `t` is capped
  at `Retry-After` (the draft's section 6: `Retry-After` never names a moment before the end of
  an effective window). `qu` is left out, so the unit reads as the default, requests: the
  draft's registry has no unit for tokens, and as every call costs at least one token, "at
  most `r` requests within `t` seconds" holds for token windows too.
- The fields of draft-06 and before, which many clients read: `RateLimit-Limit`,
  `RateLimit-Remaining` and `RateLimit-Reset` (seconds until the window is full again,
  rounded up) of the window closest to its limit (`most_restrictive`).

`Retry-After` (delta-seconds, rounded up, at least 1) is added when some window denied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tollhouse.ratelimit.strategies import WindowStats


def sf_string(text: str) -> str:
    """`text` as a structured-field String (RFC 9651 section 3.3.3): quoted, `\\` and `"`
    escaped.

    Raises:
        ValueError: a character outside printable ASCII (0x20-0x7E), which a String cannot hold.
    """
    if not text.isascii() or not text.isprintable():
        raise ValueError(f"a structured-field string holds printable ASCII only, got {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def policy_item(name: str, amount: int, period_us: int) -> str:
    """One `RateLimit-Policy` item: `"<name>";q=<amount>[;w=<whole seconds>]`.

    Raises:
        ValueError: see `sf_string`.
    """
    item = f"{sf_string(name)};q={amount}"
    if period_us % 1_000_000 == 0:
        item += f";w={period_us // 1_000_000}"
    return item


def most_restrictive(stats: Sequence[WindowStats]) -> WindowStats:
    """The window closest to its limit: the longest retry, else the smallest remaining share
    (remaining / limit, so request and token windows compare), else the longest reset.

    Raises:
        ValueError: `stats` is empty.
    """
    if not stats:
        raise ValueError("no rate-limit windows")
    return max(
        stats, key=lambda s: (s.retry_after_seconds, -s.remaining / s.limit, s.reset_after_seconds)
    )


def retry_after_header_seconds(seconds: float) -> int:
    """A wait as `Retry-After` delta-seconds: rounded up, at least 1."""
    return max(1, math.ceil(seconds))


def headers(stats: Sequence[WindowStats]) -> dict[str, str]:
    """The response header fields for a decision's windows (see the module docstring); an
    empty dict for no windows. Windows without a `policy` (built by hand) get no item in
    `RateLimit-Policy` and `RateLimit`."""
    if not stats:
        return {}
    window = most_restrictive(stats)
    result = {
        "RateLimit-Limit": str(window.limit),
        "RateLimit-Remaining": str(window.remaining),
        "RateLimit-Reset": str(math.ceil(window.reset_after_seconds)),
    }
    retry = max(s.retry_after_seconds for s in stats)
    longest = retry_after_header_seconds(retry) if retry > 0 else None
    policies = limits = ""
    for s in stats:
        policy = s.policy
        if policy is None:
            continue
        seconds = math.ceil(s.effective_window_seconds)
        if longest is not None and seconds > longest:
            seconds = longest
        if policies:
            policies += ", "
            limits += ", "
        policies += policy.policy_item
        limits += f"{policy.sf_name};r={s.remaining};t={seconds}"
    if policies:
        result["RateLimit-Policy"] = policies
        result["RateLimit"] = limits
    if longest is not None:
        result["Retry-After"] = str(longest)
    return result
