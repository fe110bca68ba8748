"""Endpoints: registered with a secret shown once, listed without it, changed, disabled and
enabled, removed with their deliveries; the delivery log read back and retried."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from tests.unit.webhooks.helpers import dispatched, emit, register

from tollhouse.clock import FrozenClock
from tollhouse.errors import InvalidInput
from tollhouse.storage import Database
from tollhouse.webhooks import (
    DeliveryStatus,
    WebhookDeliveryNotFound,
    WebhookEndpointDisabled,
    WebhookEndpointNotFound,
)
from tollhouse.webhooks import service as webhooks
from tollhouse.webhooks.models import WebhookAttempt, WebhookDelivery

URL = "https://app.example.com/hooks"


async def count(db: Database, table: type[WebhookDelivery] | type[WebhookAttempt]) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(table)) or 0)


class TestRegister:
    async def test_new_endpoint_is_enabled_with_a_secret_shown_once(
        self, db: Database, clock: FrozenClock
    ) -> None:
        created = await register(db, clock, URL, ["session.*", "credits.low"])
        assert created.secret.startswith("whsec_")
        endpoint = created.endpoint
        assert endpoint.id.startswith("whe_") and endpoint.url == URL
        assert endpoint.event_types == ["session.*", "credits.low"]
        assert endpoint.enabled and endpoint.enabled_at == clock.now()
        async with db.sessions() as session:
            listed = await webhooks.list_endpoints(session)
        assert listed == [endpoint]
        assert "secret" not in vars(listed[0])

    async def test_malformed_url_is_refused_and_nothing_is_registered(
        self, db: Database, clock: FrozenClock
    ) -> None:
        with pytest.raises(InvalidInput):
            await register(db, clock, "ftp://example.com")
        async with db.sessions() as session:
            assert await webhooks.list_endpoints(session) == []

    async def test_unknown_endpoint_is_not_found(self, db: Database, clock: FrozenClock) -> None:
        async with db.transaction() as session:
            with pytest.raises(WebhookEndpointNotFound):
                await webhooks.get_endpoint(session, "whe_missing")
            with pytest.raises(WebhookEndpointNotFound):
                await webhooks.update_endpoint(session, "whe_missing", enabled=False, clock=clock)
            with pytest.raises(WebhookEndpointNotFound):
                await webhooks.delete_endpoint(session, "whe_missing")


class TestUpdate:
    async def test_changes_only_what_is_given(self, db: Database, clock: FrozenClock) -> None:
        created = await register(db, clock, URL)
        clock.advance(60)
        async with db.transaction() as session:
            changed = await webhooks.update_endpoint(
                session,
                created.endpoint.id,
                event_types=["payment.*"],
                description="billing",
                clock=clock,
            )
        assert changed.url == URL and changed.event_types == ["payment.*"]
        assert changed.description == "billing" and changed.updated_at == clock.now()

    async def test_disable_then_enable_resets_the_reason_and_the_start(
        self, db: Database, clock: FrozenClock
    ) -> None:
        endpoint_id = (await register(db, clock, URL)).endpoint.id
        async with db.transaction() as session:
            off = await webhooks.update_endpoint(session, endpoint_id, enabled=False, clock=clock)
        assert not off.enabled and off.disabled_reason == "disabled by the operator"
        clock.advance(3600)
        async with db.transaction() as session:
            on = await webhooks.update_endpoint(session, endpoint_id, enabled=True, clock=clock)
        assert on.enabled and on.disabled_reason is None and on.disabled_at is None
        assert on.enabled_at == clock.now()


class TestDeliveryLog:
    async def test_remove_takes_its_deliveries_along(
        self, db: Database, clock: FrozenClock
    ) -> None:
        kept = await register(db, clock, URL)
        removed = await register(db, clock, URL + "/2")
        await emit(db, clock)
        await dispatched(db, clock)
        assert await count(db, WebhookDelivery) == 2
        async with db.transaction() as session:
            gone = await webhooks.delete_endpoint(session, removed.endpoint.id)
        assert gone == removed.endpoint
        async with db.sessions() as session:
            page = await webhooks.list_deliveries(session)
            assert [d.endpoint_id for d in page.deliveries] == [kept.endpoint.id]
            assert [e.id for e in await webhooks.list_endpoints(session)] == [kept.endpoint.id]

    async def test_pages_newest_first_with_filters(self, db: Database, clock: FrozenClock) -> None:
        first = await register(db, clock, URL)
        second = await register(db, clock, URL + "/2", ["credits.low"])
        started = await emit(db, clock, "session.started")
        low = await emit(db, clock, "credits.low")
        await dispatched(db, clock)
        async with db.sessions() as session:
            page = await webhooks.list_deliveries(session, limit=2)
            assert page.has_more and len(page.deliveries) == 2
            rest = await webhooks.list_deliveries(session, before=page.next_cursor)
            everything = page.deliveries + rest.deliveries
            assert not rest.has_more
            ids = [d.id for d in everything]
            assert ids == sorted(ids, reverse=True) and len(ids) == 3
            mine = await webhooks.list_deliveries(session, endpoint_id=second.endpoint.id)
            assert [(d.event_id, d.event_type) for d in mine.deliveries] == [
                (low.id, "credits.low")
            ]
            of_event = await webhooks.list_deliveries(session, event_id=started.id)
            assert [d.endpoint_id for d in of_event.deliveries] == [first.endpoint.id]
            pending = await webhooks.list_deliveries(session, status=DeliveryStatus.PENDING)
            assert len(pending.deliveries) == 3
            assert all(d.attempts == [] and d.attempt_count == 0 for d in pending.deliveries)
            done = await webhooks.list_deliveries(session, status=DeliveryStatus.SUCCEEDED)
            assert done.deliveries == []

    @pytest.mark.parametrize(("limit", "before"), [(0, None), (501, None), (10, "whd_x")])
    async def test_bad_page_arguments_are_refused(
        self, db: Database, limit: int, before: str | None
    ) -> None:
        async with db.sessions() as session:
            with pytest.raises(InvalidInput):
                await webhooks.list_deliveries(session, limit=limit, before=before)

    async def test_retry_of_unknown_delivery_is_not_found(
        self, db: Database, clock: FrozenClock
    ) -> None:
        async with db.transaction() as session:
            with pytest.raises(WebhookDeliveryNotFound):
                await webhooks.retry_delivery(session, "whd_missing", clock=clock)
            with pytest.raises(WebhookDeliveryNotFound):
                await webhooks.get_delivery(session, "whd_missing")

    async def test_retry_is_refused_while_the_endpoint_is_disabled(
        self, db: Database, clock: FrozenClock
    ) -> None:
        endpoint_id = (await register(db, clock, URL)).endpoint.id
        await emit(db, clock)
        await dispatched(db, clock)
        async with db.transaction() as session:
            await webhooks.update_endpoint(session, endpoint_id, enabled=False, clock=clock)
            delivery = (await webhooks.list_deliveries(session)).deliveries[0]
        async with db.transaction() as session:
            with pytest.raises(WebhookEndpointDisabled) as raised:
                await webhooks.retry_delivery(session, delivery.id, clock=clock)
        assert raised.value.extra["endpoint_id"] == endpoint_id
