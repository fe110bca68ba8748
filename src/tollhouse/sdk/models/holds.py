"""Models of `client.holds`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import NotRequired, TypedDict

from tollhouse.sdk.models._model import Model


class UsageEstimate(TypedDict):
    """Part of the body of `POST /v1/authorize`."""

    requests: NotRequired[int]
    input_tokens: NotRequired[int]
    output_tokens: NotRequired[int]
    images: NotRequired[int]
    characters: NotRequired[int]


class Hold(Model):
    """Answered by `POST /v1/authorize`."""

    id: str
    customer_id: str
    amount_micros: int
    captured_micros: int
    status: str
    created_at: datetime
    expires_at: datetime | None


class SessionUse(Model):
    """The flat session a call runs in (and is paid by)."""

    id: str
    product: str
    tokens_left: int | None
    """None without a token cap."""
    seconds_left: int | None
    """None without a duration cap."""


class Authorization(Model):
    """Answered by `POST /v1/authorize`."""

    allowed: bool
    customer_id: str
    model: str
    amount_micros: int
    """Price of the estimate: held now, settled by capture (0 inside a session)."""
    hold: Hold | None
    """None when the estimate costs nothing, or a session pays for the call."""
    session: SessionUse | None = None
    """The session that covers the call: report its usage with `session_id` set on the usage events
    (`POST /v1/usage/events`), so its tokens count toward the session's cap.
    """
    balance_micros: int | None = None
    """The wallet's available credit after this hold (`x-tollhouse-balance-micros`); None when
    nothing was held, or for a replay.
    """
    headers: dict[str, str]
    """This answer's rate-limit, balance, low-credit and session header fields, for the application
    to add to its own response to the caller (`tollhouse.integrations` does).
    """
