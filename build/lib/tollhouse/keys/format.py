"""The API key format: `th_<env>_<22 base62 random><6 base62 checksum>`.

- `env` is 1..12 characters of `[a-z0-9]` (`live`, `test`, ...).
- The random part is 22 characters drawn by `secrets` from 62 symbols: 22 * log2(62) ~ 131 bits.
- The checksum is `zlib.crc32` of everything before it (ASCII), in base62, zero-padded to 6
  characters (62**6 > 2**32). It catches every single-character typo, so a mistyped key is
  refused without touching the database.

Only `digest(raw, secret)` (HMAC-SHA256, hex) is ever stored; `prefix` (`th_<env>_` plus the
first 8 random characters) is stored to let people recognise their keys.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import zlib
from dataclasses import dataclass

from tollhouse.ids import base62, random_base62
from tollhouse.keys.errors import MalformedKey

KEY_PREFIX = "th"
RANDOM_LENGTH = 22
"""Base62 characters of randomness (~131 bits)."""
CHECKSUM_LENGTH = 6
VISIBLE_LENGTH = 8
"""Random characters kept in the stored `prefix`."""
ENV_PATTERN = re.compile(r"[a-z0-9]{1,12}")
_KEY_PATTERN = re.compile(
    rf"{KEY_PREFIX}_(?P<env>{ENV_PATTERN.pattern})_"
    rf"(?P<body>[0-9A-Za-z]{{{RANDOM_LENGTH}}})(?P<checksum>[0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
MAX_KEY_LENGTH = len(KEY_PREFIX) + 2 + 12 + RANDOM_LENGTH + CHECKSUM_LENGTH


def checksum(text: str) -> str:
    """The 6-character base62 CRC32 of `text` (ASCII)."""
    return base62(zlib.crc32(text.encode("ascii")), CHECKSUM_LENGTH)


@dataclass(frozen=True, repr=False)
class ParsedKey:
    """A key that passed the shape and checksum test. `body` is the 22 random characters."""

    env: str
    body: str

    @property
    def prefix(self) -> str:
        """The visible part stored with the key: `th_<env>_` + the first 8 random characters."""
        return f"{KEY_PREFIX}_{self.env}_{self.body[:VISIBLE_LENGTH]}"

    def __repr__(self) -> str:
        return f"ParsedKey(env={self.env!r}, prefix={self.prefix!r})"


def generate_key(env: str = "live") -> str:
    """A new random key `th_<env>_...` (secret: show it once, store only its digest).

    Raises:
        ValueError: `env` is not 1..12 characters of `[a-z0-9]`.
    """
    if not ENV_PATTERN.fullmatch(env):
        raise ValueError("env must be 1..12 characters of [a-z0-9]")
    head = f"{KEY_PREFIX}_{env}_{random_base62(RANDOM_LENGTH)}"
    return head + checksum(head)


def parse_key(raw: str) -> ParsedKey:
    """Check the shape and checksum of `raw`, without any lookup.

    Raises:
        MalformedKey: not `th_<env>_<28 base62>`, or the checksum does not match.
    """
    if len(raw) > MAX_KEY_LENGTH:
        raise MalformedKey("the API key is malformed")
    match = _KEY_PATTERN.fullmatch(raw)
    if match is None:
        raise MalformedKey("the API key is malformed")
    head = raw[:-CHECKSUM_LENGTH]
    if not hmac.compare_digest(checksum(head), match["checksum"]):
        raise MalformedKey("the API key checksum does not match (typo?)")
    return ParsedKey(env=match["env"], body=match["body"])


def env_of_prefix(prefix: str) -> str:
    """The `env` of a stored `prefix` (`th_<env>_` + 8 random characters)."""
    return prefix.split("_")[1]


def digest(raw: str, secret: bytes) -> str:
    """HMAC-SHA256 of `raw` under `secret`, 64 lowercase hex characters. What the DB stores."""
    return hmac.new(secret, raw.encode("utf-8"), hashlib.sha256).hexdigest()
