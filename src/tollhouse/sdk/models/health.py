"""Models of `client.health`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk.models._model import Model


class Health(Model):
    """Answered by `GET /health`."""

    status: str


class Ready(Model):
    """Answered by `GET /ready`."""

    status: str
    checks: dict[str, str]
