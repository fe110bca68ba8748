"""Public identifiers: `<prefix>_<22 base62 chars>` (about 131 random bits), e.g. `cus_4Vx...`."""

from __future__ import annotations

import secrets

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def base62(value: int, width: int) -> str:
    """`value` in base62, left-padded with `0` to `width` characters."""
    digits = []
    while value:
        value, rem = divmod(value, 62)
        digits.append(BASE62[rem])
    return "".join(reversed(digits)).rjust(width, "0")


def random_base62(length: int) -> str:
    """`length` characters drawn uniformly from the base62 alphabet by `secrets`."""
    return "".join(secrets.choice(BASE62) for _ in range(length))


def new_id(prefix: str) -> str:
    """A new random id such as `cus_...`, `key_...`, `hold_...`."""
    return f"{prefix}_{random_base62(22)}"
