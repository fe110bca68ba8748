"""Models of `client.health`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk.models._model import Model


class Health(Model):
    """Answered by `GET /health`."""

    status: str
    """Always `ok`."""


class Ready(Model):
    """Answered by `GET /ready`."""

    status: str
    """`ready`."""
    checks: dict[str, str]
    """Each check (`database`, `migrations`, and `redis` when configured) and `ok`."""
