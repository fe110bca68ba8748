"""What an endpoint takes: its event types, and its URL, checked when it is registered.

An endpoint's `event_types` is a list of filters, each one of:
- an exact type, `session.ended` (dotted lowercase `domain.verb`, as `events` names them);
- a prefix, `session.*`: every type of the domain;
- `*`: every event.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from tollhouse.errors import InvalidInput
from tollhouse.events import service as events

ALL = "*"
MAX_FILTERS = 50
"""Most filters one endpoint may list."""
MAX_URL_LENGTH = 2048
FILTER_PATTERN = r"^(\*|[a-z][a-z0-9_]*\.(\*|[a-z][a-z0-9_]*))$"
"""`*`, `domain.*` or `domain.verb`."""

_FILTER = re.compile(FILTER_PATTERN)
_HOST_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.?$")
_UNSAFE = re.compile(r"[\x00-\x20\x7f]")


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", errors=[{"loc": loc, "msg": msg}])


def check_event_types(filters: Iterable[str]) -> list[str]:
    """The filters, duplicates dropped (first kept), as given otherwise.

    Raises:
        InvalidInput: none, more than `MAX_FILTERS`, or one that is not `*`, `domain.*` or a
            `domain.verb` of at most 64 characters (`loc` = `event_types`).
    """
    kept = list(dict.fromkeys(filters))
    if not 1 <= len(kept) <= MAX_FILTERS:
        raise _invalid("event_types", f"list between 1 and {MAX_FILTERS} event types")
    for item in kept:
        if len(item) > events.MAX_TYPE_LENGTH or not _FILTER.match(item):
            raise _invalid(
                "event_types", f"{item[:80]!r} is not '*', 'domain.*' or a 'domain.verb' type"
            )
    return kept


def matches(filters: Iterable[str], event_type: str) -> bool:
    """True when one of `filters` takes `event_type`."""
    domain = event_type.partition(".")[0]
    return any(f in (ALL, event_type) or f == domain + ".*" for f in filters)


def check_url(url: str) -> str:
    """`url` if it is an absolute `http` or `https` URL with a host name or IP address, at
    most 2048 characters, without whitespace, control characters or a fragment.

    Raises:
        InvalidInput: anything else (`loc` = `url`).
    """
    if len(url) > MAX_URL_LENGTH:
        raise _invalid("url", f"must be at most {MAX_URL_LENGTH} characters")
    if _UNSAFE.search(url):
        raise _invalid("url", "must not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number in 0..65535 raises here)
    except ValueError as error:
        raise _invalid("url", f"is not a URL: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise _invalid("url", "must be an http:// or https:// URL")
    if parts.fragment or url.endswith("#"):
        raise _invalid("url", "must not have a fragment (#...)")
    host = parts.hostname or ""
    if not _is_host(host):
        raise _invalid("url", "must name a host (a DNS name or an IP address)")
    return url


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if not host.isascii():
        try:
            host = host.encode("idna").decode()
        except UnicodeError:
            return False
    return len(host) <= 253 and bool(_HOST_NAME.match(host))
