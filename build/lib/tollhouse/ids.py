"""Public identifiers: `<prefix>_<22 base62 chars>`, e.g. `cus_0Pv1Wd2k...`, time-ordered.

An id is 8 symbols of its creation time (Unix milliseconds) followed by 14 random symbols
(about 83 bits, the shape of a ULID: a 48-bit time, then 80 random bits). Ids made later sort
after earlier ones (base62's symbols are in ASCII order), so the rows a gateway call inserts
(holds, transfers, usage events keyed by its request id) land at the end of their indexes, not
at random places in them: random keys made every insert touch a page anywhere in the index,
which cost SQLite's writer about twice the CPU per call once the tables outgrew its page cache
(see bench/README.md). RFC 9562 (section 2.1, UUIDv7) gives the same reason for time-ordered
keys. Ids made in one millisecond are ordered by their random part only; nothing relies on
the order of ids, only the indexes profit from it.

Random symbols come from `os.urandom` (the same source as `secrets`) mapped onto base62 with
C-speed byte operations: bytes >= 248 are dropped (rejection sampling), the rest map `b % 62`,
so every symbol is equally likely. `new_id` takes its symbols from a buffer of 4,096 symbols at
a time (ids are made on every gateway call and ledger transfer; one `os.urandom` call per id
was a measurable share of a call), under a lock, and emptied in a forked child so parent and
child never share symbols. Secrets (API keys) draw fresh bytes: `random_base62`.
"""

from __future__ import annotations

import os
import threading
import time

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 22
TIME_SYMBOLS = 8
"""Symbols of an id's creation time: 62**8 milliseconds, about 6,900 years from 1970."""
RANDOM_SYMBOLS = ID_LENGTH - TIME_SYMBOLS

_UNBIASED = 62 * 4  # bytes below 248 map uniformly onto 62 symbols (b % 62)
_TO_BASE62 = bytes(ord(BASE62[b % 62]) if b < _UNBIASED else 0 for b in range(256))
_REJECTED = bytes(range(_UNBIASED, 256))
_BUFFER_SYMBOLS = 4096


def base62(value: int, width: int) -> str:
    """`value` in base62, left-padded with `0` to `width` characters."""
    digits = []
    while value:
        value, rem = divmod(value, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits)).rjust(width, "0")


def random_base62(length: int) -> str:
    """`length` characters drawn uniformly and independently from the base62 alphabet, from
    fresh `os.urandom` bytes (for secrets)."""
    symbols = b""
    while len(symbols) < length:
        # 248/256 of the bytes survive: `length + 8 + length // 4` almost always suffices.
        symbols += os.urandom(length + 8 + length // 4).translate(_TO_BASE62, _REJECTED)
    return symbols[:length].decode()


class _Symbols:
    """A buffer of random base62 symbols, taken front to back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = ""
        self._position = 0

    def take(self, length: int) -> str:
        with self._lock:
            end = self._position + length
            if end > len(self._buffer):
                self._buffer = random_base62(max(length, _BUFFER_SYMBOLS))
                self._position, end = 0, length
            symbols = self._buffer[self._position : end]
            self._position = end
            return symbols

    def clear(self) -> None:
        self._lock = threading.Lock()  # a forked child may inherit it held
        self._buffer, self._position = "", 0


_symbols = _Symbols()
os.register_at_fork(after_in_child=_symbols.clear)


_last_time: tuple[int, str] = (-1, "")
"""The last millisecond an id was made in, and its symbols (one conversion per millisecond)."""


def _time_symbols(milliseconds: int) -> str:
    """The `TIME_SYMBOLS` base62 symbols of Unix `milliseconds`, as ids begin with them."""
    global _last_time
    last = _last_time
    if last[0] != milliseconds:
        last = _last_time = (milliseconds, base62(milliseconds, TIME_SYMBOLS))
    return last[1]


def new_id(prefix: str) -> str:
    """A new id such as `cus_...`, `key_...`, `hold_...`: the creation time's symbols, then
    `RANDOM_SYMBOLS` random ones."""
    return prefix + "_" + _time_symbols(time.time_ns() // 1_000_000) + _symbols.take(RANDOM_SYMBOLS)
