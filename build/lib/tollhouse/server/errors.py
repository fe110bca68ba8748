"""Errors of the process itself (not of a domain).

```
TollhouseError
└── NotReady (503 not-ready)     `/ready`: a dependency does not answer, or the schema is behind
```
"""

from __future__ import annotations

from tollhouse.errors import TollhouseError


class NotReady(TollhouseError):
    """The process should not get traffic yet. Extra: `checks`, a dict of check name
    (`database`, `migrations`, `redis`) to `"ok"` or the reason it failed, and
    `retry_after_seconds` (1)."""

    status, code, title = 503, "not-ready", "Not ready"
