"""An indicators API sold by the session: each endpoint needs an active $1 session (24 hours or
100,000 data points), and every answer names the session that paid for it.

tollhouse runs in this process (`LocalToll`) and serves its own API beside these routes:
customers start sessions with `POST /v1/sessions`, read their balance, buy session packs.
The catalog is the `analysis-sessions` preset (`tollhouse init --preset analysis-sessions`):
its `indicators` model is `required` by the `analysis-day` session product, so a call without
a session is refused with 402 `session-required` before any work is done.

Run: `TOLLHOUSE_DATABASE_URL=sqlite:///./analysis.db uvicorn app:app`
"""

from __future__ import annotations

from itertools import pairwise

from fastapi import Response
from pydantic import BaseModel, Field

from tollhouse import Runtime, Settings, create_app
from tollhouse.integrations import LocalToll, Work, install, requires

runtime = Runtime(Settings())  # TOLLHOUSE_DATABASE_URL and TOLLHOUSE_CATALOG from the environment
toll = LocalToll(runtime)
app = create_app(runtime)  # tollhouse's API; its lifespan starts and stops the runtime
install(app, toll)

MAX_POINTS = 10_000
in_session = requires(toll, model="indicators", usage={"input_tokens": MAX_POINTS})
"""Each call may use up to `MAX_POINTS` of the session's 100,000 tokens (one per price)."""


class Series(BaseModel):
    """Closing prices, oldest first."""

    prices: list[float] = Field(min_length=2, max_length=MAX_POINTS)
    period: int = Field(default=14, ge=2, le=1_000)


class Indicator(BaseModel):
    values: list[float | None]
    """One value per price; None until the period has enough prices."""
    session_id: str | None
    """The session that paid for this answer."""


def _answer(work: Work, response: Response, values: list[float | None], points: int) -> Indicator:
    work.use(input_tokens=points)  # counts toward the session's token cap
    response.headers["x-analysis-points"] = str(points)
    return Indicator(values=values, session_id=work.session_id)


@app.post("/v1/indicators/sma")
async def simple_moving_average(
    series: Series, response: Response, work: Work = in_session
) -> Indicator:
    """The mean of the last `period` prices at each price."""
    p, prices = series.period, series.prices
    values: list[float | None] = [
        None if i + 1 < p else round(sum(prices[i + 1 - p : i + 1]) / p, 6)
        for i in range(len(prices))
    ]
    return _answer(work, response, values, len(prices))


@app.post("/v1/indicators/rsi")
async def relative_strength_index(
    series: Series, response: Response, work: Work = in_session
) -> Indicator:
    """Wilder's relative strength index (J. Welles Wilder, *New Concepts in Technical Trading
    Systems*, 1978): the first average gain and loss are plain means of `period` changes,
    then each is smoothed as `(previous * (period - 1) + current) / period`;
    RSI = 100 - 100 / (1 + average gain / average loss), 100 when there is no loss."""
    p, prices = series.period, series.prices
    changes = [b - a for a, b in pairwise(prices)]
    values: list[float | None] = [None] * len(prices)
    if len(changes) >= p:
        gain = sum(max(c, 0.0) for c in changes[:p]) / p
        loss = sum(max(-c, 0.0) for c in changes[:p]) / p
        for i in range(p, len(prices)):
            if i > p:
                change = changes[i - 1]
                gain = (gain * (p - 1) + max(change, 0.0)) / p
                loss = (loss * (p - 1) + max(-change, 0.0)) / p
            values[i] = 100.0 if loss == 0 else round(100 - 100 / (1 + gain / loss), 4)
    return _answer(work, response, values, len(prices))
