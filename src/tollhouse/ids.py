"""Public identifiers: `<prefix>_<22 base62 chars>` (about 131 random bits), e.g. `cus_4Vx...`.

Symbols come from `os.urandom` (the same source as `secrets`) mapped onto base62 with C-speed
byte operations: bytes >= 248 are dropped (rejection sampling), the rest map `b % 62`, so every
symbol is equally likely. `new_id` takes its symbols from a buffer of 4,096 symbols at a time (ids
are made on every gateway call and ledger transfer; one `os.urandom` call per id was a
measurable share of a call), under a lock, and emptied in a forked child so parent and child
never share symbols. Secrets (API keys) draw fresh bytes: `random_base62`.
"""

from __future__ import annotations

import os
import threading

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_LENGTH = 22

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


def new_id(prefix: str) -> str:
    """A new random id such as `cus_...`, `key_...`, `hold_...`."""
    return prefix + "_" + _symbols.take(ID_LENGTH)
