"""The gateway's routes and its record of one admitted call (shared by `proxy` and `settle`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollhouse.gateway.admission import Admission
from tollhouse.gateway.estimate import Kind
from tollhouse.keys import Principal


@dataclass(frozen=True, slots=True)
class Route:
    """One OpenAI-compatible route: its path here, its path under the upstream's base URL."""

    path: str
    upstream_path: str
    kind: Kind


ROUTES = (
    Route("/v1/chat/completions", "/chat/completions", "chat"),
    Route("/v1/completions", "/completions", "completion"),
    Route("/v1/embeddings", "/embeddings", "embedding"),
    Route("/v1/images/generations", "/images/generations", "image"),
    Route("/v1/audio/speech", "/audio/speech", "speech"),
)


@dataclass(slots=True)
class Call:
    """Everything known about one admitted gateway call; `upstream` is the catalog upstream
    that answered it (set by `proxy.forward`, recorded on its usage events)."""

    request_id: str
    route: Route
    principal: Principal
    admission: Admission
    started_at: datetime
    body: dict[str, Any]
    raw: bytes
    stream: bool
    upstream: str | None = None
