"""`Toll` against a tollhouse server, through the SDK (`tollhouse.AsyncClient`): for an
application that runs apart from tollhouse (its own processes, tollhouse as a sidecar).

A unit of work is authorized with the caller's own key (`AsyncClient.with_api_key`), so
tollhouse checks that key, its plan, rate limits, quotas, session and wallet exactly as on
`POST /v1/authorize`; a denial is raised as the SDK's `APIStatusError`, which the ASGI and
FastAPI layers answer with tollhouse's problem+json as it came. The work is then captured or
voided and its usage recorded with the application's client (an operator key), at the
price of what it used, computed from the server's catalog (`GET /v1/catalog`, read once)
with the same `Price.cost` tollhouse charges with.
"""

from __future__ import annotations

from decimal import Decimal

from tollhouse.catalog import Price
from tollhouse.ids import new_id
from tollhouse.integrations.toll import Requirement, Work, settlement, usage_of
from tollhouse.sdk import AsyncClient, ConflictError
from tollhouse.sdk.models.usage import EventIn


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


class RemoteToll:
    """`Toll` over HTTP: `client` is the application's `AsyncClient` (base URL and an
    operator key, e.g. from `TOLLHOUSE_URL` and `TOLLHOUSE_API_KEY`), closed by the
    application."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self._prices: dict[str, Price] = {}
        self._meters: frozenset[str] = frozenset()

    async def _price(self, model: str) -> Price:
        """The catalog price of `model` (the catalog, and its meters, read once)."""
        if not self._prices:
            catalog = await self.client.catalog.retrieve()
            self._meters = frozenset(catalog.meters)
            self._prices = {
                m.id: Price(
                    per_request_micros=m.price.per_request_micros or 0,
                    input_per_1m_tokens=_decimal(m.price.input_per_1m_tokens_micros),
                    output_per_1m_tokens=_decimal(m.price.output_per_1m_tokens_micros),
                    per_image=_decimal(m.price.per_image_micros),
                    per_audio_second=_decimal(m.price.per_audio_second_micros),
                    per_1m_characters=_decimal(m.price.per_1m_characters_micros),
                )
                for m in catalog.models
            }
        return self._prices[model]

    async def authorize(
        self, key: str, requirement: Requirement, *, idempotency_key: str | None = None
    ) -> Work:
        """See `Toll.authorize`; a denial raises `tollhouse.sdk.APIStatusError`."""
        answer = await self.client.with_api_key(key).holds.authorize(
            model=requirement.model,
            usage=dict(requirement.usage),  # type: ignore[arg-type]  # a UsageEstimate
            features=list(requirement.features),
            resource_tier=requirement.resource_tier,
            idempotency_key=idempotency_key,
        )
        hold, session = answer.hold, answer.session
        return Work(
            id=hold.id if hold is not None else new_id("work"),
            customer_id=answer.customer_id,
            key_id=None,
            model=answer.model,
            estimate=usage_of(requirement.usage),
            held_micros=answer.amount_micros,
            hold_id=hold.id if hold is not None else None,
            session_id=session.id if session is not None else None,
            headers=dict(answer.headers),
        )

    async def settle(self, work: Work, *, succeeded: bool) -> None:
        """As `LocalToll.settle`, over HTTP (the SDK retries; capture, void and usage events
        apply once however often they are sent)."""
        if not succeeded:
            if work.hold_id is not None:
                await self.client.holds.void(work.hold_id)
            return
        cost, moved = settlement(work, await self._price(work.model), self._meters)
        charged = min(cost, work.held_micros)
        if work.hold_id is not None:
            try:
                await self.client.holds.capture(work.hold_id, amount_micros=charged)
            except ConflictError:  # it expired first: the sweeper released it
                charged = 0
        events: list[EventIn] = [
            {"id": f"{work.id}:{meter}", "customer_id": work.customer_id, "meter": meter,
             "value": value, "model": work.model, "session_id": work.session_id,
             "properties": {"cost_micros": charged, "uncaptured_micros": cost - charged}}
            for meter, value in moved.items()
        ]  # fmt: skip
        await self.client.usage.record(events=events)

    async def customer_of(self, key: str) -> str:
        """See `Toll.customer_of` (asks the server who the key's customer is)."""
        me = await self.client.with_api_key(key).customers.retrieve("me")
        return me.id
