"""Which gateway routes may serve a model: what its category allows, and what its upstream speaks.

A model is served on a route kind when its category allows that kind (`CATEGORY_ROUTES`) and
its upstream's protocol speaks it (`PROTOCOL_ROUTES`); the loader resolves the set once per
model (`Model.routes`), so the gateway's check is one set lookup. A category not in the table
(an operator's own) allows every kind its upstream speaks.

| category | route kinds |
| --- | --- |
| `text` | chat, completion, responses, messages |
| `visual-qa`, `video-analysis`, `image-analysis` | chat, responses, messages |
| `text-to-image` | image |
| `text-to-speech` | speech |
| `speech-to-text` | transcription, translation |
| `moderation` | moderation |
| `embeddings` | embedding |

| protocol | route kinds |
| --- | --- |
| `openai` | chat, completion, embedding, image, speech, transcription, translation, moderation, responses |
| `anthropic` | messages |
| `http` | none: the application calls the model itself and meters it with the sidecar (`POST /v1/authorize`, `POST /v1/usage/events`) |

To serve a new kind of route, add it to `RouteKind`, to the protocols that speak it and to
the categories that may use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal, get_args

RouteKind = Literal[
    "chat",
    "completion",
    "embedding",
    "image",
    "speech",
    "transcription",
    "translation",
    "moderation",
    "responses",
    "messages",
]
"""A kind of gateway route (`gateway.call.ROUTES` maps each to its path)."""

Protocol = Literal["openai", "anthropic", "http"]
"""How the gateway talks to an upstream: OpenAI-compatible API, Anthropic's Messages API, or a
plain HTTP endpoint the gateway does not call."""

_EVERY_KIND: frozenset[RouteKind] = frozenset(get_args(RouteKind))
_ANTHROPIC: frozenset[RouteKind] = frozenset({"messages"})
_CONVERSATION: frozenset[RouteKind] = frozenset({"chat", "responses", "messages"})

CATEGORY_ROUTES: Mapping[str, frozenset[RouteKind]] = MappingProxyType(
    {
        "text": _CONVERSATION | {"completion"},
        "visual-qa": _CONVERSATION,
        "video-analysis": _CONVERSATION,
        "image-analysis": _CONVERSATION,
        "text-to-image": frozenset({"image"}),
        "text-to-speech": frozenset({"speech"}),
        "speech-to-text": frozenset({"transcription", "translation"}),
        "moderation": frozenset({"moderation"}),
        "embeddings": frozenset({"embedding"}),
    }
)
"""Category -> the route kinds its models may be called on (a category not listed: all)."""

PROTOCOL_ROUTES: Mapping[Protocol, frozenset[RouteKind]] = MappingProxyType(
    {
        "openai": _EVERY_KIND - _ANTHROPIC,
        "anthropic": _ANTHROPIC,
        "http": frozenset(),
    }
)
"""Protocol -> the route kinds an upstream speaking it can serve."""


def routes_for(category: str, protocol: Protocol) -> frozenset[RouteKind]:
    """The route kinds a model of `category` on an upstream speaking `protocol` is served on
    (empty: not callable through the gateway)."""
    spoken = PROTOCOL_ROUTES[protocol]
    allowed = CATEGORY_ROUTES.get(category)
    return spoken if allowed is None else spoken & allowed
