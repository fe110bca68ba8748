"""The gateway's routes and its record of one admitted call (shared by `proxy` and `settle`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tollhouse.catalog import CATEGORY_ROUTES, Model, Protocol
from tollhouse.gateway.admission import Admission
from tollhouse.gateway.audio import AudioUpload
from tollhouse.gateway.errors import WrongRoute
from tollhouse.gateway.estimate import Kind
from tollhouse.keys import Principal


@dataclass(frozen=True, slots=True)
class Route:
    """One gateway route: its path here, its path under the upstream's base URL, its kind,
    the protocol it speaks (its key header, its error shape), and `default_model`, the model
    of a call that names none (None: `model` is required)."""

    path: str
    upstream_path: str
    kind: Kind
    protocol: Protocol = "openai"
    default_model: str | None = None


ROUTES = (
    Route("/v1/chat/completions", "/chat/completions", "chat"),
    Route("/v1/completions", "/completions", "completion"),
    Route("/v1/embeddings", "/embeddings", "embedding"),
    Route("/v1/images/generations", "/images/generations", "image"),
    Route("/v1/audio/speech", "/audio/speech", "speech"),
    Route("/v1/audio/transcriptions", "/audio/transcriptions", "transcription"),
    Route("/v1/audio/translations", "/audio/translations", "translation"),
    Route("/v1/moderations", "/moderations", "moderation", default_model="omni-moderation-latest"),
    Route("/v1/responses", "/responses", "responses"),
    Route("/v1/messages", "/v1/messages", "messages", "anthropic"),
)
"""An `anthropic` upstream's `base_url` is its host (`https://api.anthropic.com`), as the
`anthropic` SDK's is; an `openai` one's ends in `/v1`, as the `openai` SDK's does.
`/v1/moderations` without a model uses OpenAI's default, `omni-moderation-latest`."""


COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
"""Anthropic's token count, answered by tollhouse itself (nothing held or charged)."""

ANTHROPIC_PATHS = frozenset(
    [COUNT_TOKENS_PATH, *(route.path for route in ROUTES if route.protocol == "anthropic")]
)
"""The paths of Anthropic's API: keys also in `x-api-key`, errors in Anthropic's shape."""


def wrong_route(model: Model, route: Route) -> WrongRoute:
    """The 400 of a call of `model` on a route it is not served on (`Model.routes`), naming
    the route that serves it, or the sidecar for a model no gateway route serves."""
    right = [r.path for r in ROUTES if r.kind in model.routes]
    if not right:
        detail = (
            f"model '{model.id}' is not served by the gateway: call it from your application "
            "and meter it with POST /v1/authorize and POST /v1/usage/events"
        )
    elif route.kind in CATEGORY_ROUTES.get(model.category, (route.kind,)):
        # The category allows this route; the upstream's protocol does not speak it.
        detail = (
            f"model '{model.id}' is not served on POST {route.path} by its upstream: "
            f"call POST {right[0]}"
        )
    else:
        detail = f"model '{model.id}' is a {model.category} model: call POST {right[0]}"
    return WrongRoute(detail, model=model.id, routes=right, param="model")


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
    passed_headers: tuple[tuple[str, str], ...] = ()
    """Client headers passed on to the upstream (Anthropic's `anthropic-version`,
    `anthropic-beta`)."""
    upload: AudioUpload | None = None
    """The parsed form of an audio upload (`gateway.audio`); None for JSON calls."""
    upstream_seconds: float = 0.0
    """Time spent waiting on upstreams for the answer (every attempt's; a stream's head)."""
