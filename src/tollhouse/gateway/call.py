"""The gateway's routes and its record of one admitted call (shared by `proxy` and `settle`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollhouse.gateway.admission import Admission
from tollhouse.gateway.audio import AudioUpload
from tollhouse.gateway.estimate import Kind
from tollhouse.keys import Principal


@dataclass(frozen=True, slots=True)
class Route:
    """One OpenAI-compatible route: its path here, its path under the upstream's base URL;
    `default_model` is the model of a call that names none (None: `model` is required)."""

    path: str
    upstream_path: str
    kind: Kind
    default_model: str | None = None


ROUTES = (
    Route("/v1/chat/completions", "/chat/completions", "chat"),
    Route("/v1/completions", "/completions", "completion"),
    Route("/v1/embeddings", "/embeddings", "embedding"),
    Route("/v1/images/generations", "/images/generations", "image"),
    Route("/v1/audio/speech", "/audio/speech", "speech"),
    Route("/v1/audio/transcriptions", "/audio/transcriptions", "transcription"),
    Route("/v1/audio/translations", "/audio/translations", "translation"),
    Route("/v1/moderations", "/moderations", "moderation", "omni-moderation-latest"),
)
"""`/v1/moderations` without a model uses OpenAI's default, `omni-moderation-latest`."""


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
    upload: AudioUpload | None = None
    """The parsed form of an audio upload (`gateway.audio`); None for JSON calls."""
