"""Sending: deliveries POSTed to a real local receiver, signed, retried on the schedule,
logged attempt by attempt, leased so that no attempt is sent twice at once; an endpoint that
fails for days is disabled; a manual retry sends a failed delivery again.

Time is the frozen clock: a test moves it past the next due time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from datetime import timedelta

import aiohttp
from tests.support.receiver import WebhookReceiver
from tests.unit.webhooks.helpers import CUSTOMER, dispatched, emit, register

from tollhouse.clock import FrozenClock
from tollhouse.storage import Database
from tollhouse.webhooks import DeliveryStatus, DeliveryView, deliver_due
from tollhouse.webhooks import service as webhooks
from tollhouse.webhooks.delivery import LEASE_SECONDS, Outcome, claim_due, record
from tollhouse.webhooks.schedule import JITTER, MAX_ATTEMPTS, RETRY_DELAYS_SECONDS


async def only_delivery(db: Database) -> DeliveryView:
    async with db.sessions() as session:
        page = await webhooks.list_deliveries(session)
    assert len(page.deliveries) == 1
    return page.deliveries[0]


def past_delay(clock: FrozenClock, failed: int) -> None:
    """Move the clock past the longest wait after the `failed`-th failed attempt."""
    clock.advance(RETRY_DELAYS_SECONDS[failed - 1] * (1 + JITTER) + 1)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 that nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


class TestDeliver:
    async def test_receiver_failing_twice_gets_three_attempts_and_one_effect(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        receiver.script = [500, 503]
        await register(db, clock, receiver.url)
        event = await emit(db, clock, "session.ended", session_id="ses_1", fee_micros=1_000_000)
        await dispatched(db, clock)

        assert len(await deliver_due(db, http, clock=clock)) == 1
        assert await deliver_due(db, http, clock=clock) == []  # not due for 5 s
        past_delay(clock, 1)
        assert len(await deliver_due(db, http, clock=clock)) == 1
        past_delay(clock, 2)
        assert len(await deliver_due(db, http, clock=clock)) == 1
        clock.advance(3 * 24 * 3600)
        assert await deliver_due(db, http, clock=clock) == []

        delivery = await only_delivery(db)
        assert delivery.status == "succeeded" and delivery.attempt_count == 3
        assert (
            delivery.next_attempt_at is None
            and delivery.completed_at == clock.now() - timedelta(seconds=3 * 24 * 3600)
        )
        assert [a.status_code for a in delivery.attempts] == [500, 503, 200]
        assert [a.succeeded for a in delivery.attempts] == [False, False, True]
        assert [a.error for a in delivery.attempts] == ["HTTP 500", "HTTP 503", None]
        assert all(a.latency_ms >= 0 for a in delivery.attempts)
        assert delivery.attempts[2].response_body == "answered 200"
        assert receiver.effects == {event.id: 1}
        assert [r.headers["webhook-id"] for r in receiver.requests] == [event.id] * 3
        assert len({r.body for r in receiver.requests}) == 1  # the same bytes every attempt
        assert len({r.headers["webhook-timestamp"] for r in receiver.requests}) == 3

    async def test_standard_webhooks_receiver_accepts_the_signatures(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        """The receiver verifies each request with the reference library's verifier and with
        the spec's algorithm written out; it answers 401 if either refuses."""
        created = await register(db, clock, receiver.url)
        receiver.secret = created.secret
        events = [await emit(db, clock, "credits.low", balance_micros=n) for n in range(3)]
        await dispatched(db, clock)
        outcomes = await deliver_due(db, http, clock=clock)
        assert [o.status_code for o in outcomes] == [200, 200, 200]
        assert sorted(receiver.effects) == sorted(e.id for e in events)
        received = receiver.requests[0]
        assert received.headers["content-type"] == "application/json"
        assert received.headers["webhook-timestamp"] == str(int(clock.timestamp()))
        body = json.loads(received.body)
        assert set(body) == {"id", "type", "timestamp", "customer_id", "data"}
        assert body["type"] == "credits.low" and body["customer_id"] == CUSTOMER

    async def test_a_receiver_with_another_secret_refuses_them(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        """The verifying receiver is not one that accepts anything."""
        await register(db, clock, receiver.url)
        receiver.secret = (await register(db, clock, receiver.url + "?other")).secret
        await emit(db, clock)
        await dispatched(db, clock)
        statuses = sorted(o.status_code or 0 for o in await deliver_due(db, http, clock=clock))
        assert statuses == [200, 401]

    async def test_schedule_runs_out_into_failed_after_a_day(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        receiver.then = 500
        await register(db, clock, receiver.url)
        await emit(db, clock)
        await dispatched(db, clock)
        first = clock.now()
        for failed in range(1, MAX_ATTEMPTS + 1):
            assert len(await deliver_due(db, http, clock=clock)) == 1
            delivery = await only_delivery(db)
            if failed < MAX_ATTEMPTS:
                assert delivery.status == "pending" and delivery.next_attempt_at is not None
                wait = (delivery.next_attempt_at - clock.now()).total_seconds()
                delay = RETRY_DELAYS_SECONDS[failed - 1]
                assert delay <= wait <= delay * (1 + JITTER)
                clock.set(delivery.next_attempt_at)
        assert delivery.status == "failed" and delivery.next_attempt_at is None
        assert delivery.attempt_count == MAX_ATTEMPTS == len(receiver.requests)
        assert clock.now() - first >= timedelta(hours=24)
        clock.advance(30 * 24 * 3600)
        assert await deliver_due(db, http, clock=clock) == []

    async def test_refused_connection_timeout_and_redirect_are_failures(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        slow = WebhookReceiver(hang_seconds=2.0)
        await slow.start()
        try:
            receiver.then = 302
            for url in (closed_port_url(), slow.url, receiver.url):
                await register(db, clock, url)
            await emit(db, clock)
            await dispatched(db, clock)
            outcomes = await deliver_due(db, http, clock=clock, timeout_seconds=0.5)
        finally:
            await slow.stop()
        errors = sorted(o.error or "" for o in outcomes)
        assert errors[0].startswith("ClientConnectorError")
        assert errors[1:] == ["HTTP 302", "timeout after 0.5 s"]  # the redirect not followed
        assert all(not o.succeeded for o in outcomes)
        assert {o.status_code for o in outcomes} == {None, 302}
        timed_out = next(o for o in outcomes if o.error == "timeout after 0.5 s")
        assert 500 <= timed_out.latency_ms < 2000


class TestLeases:
    async def test_concurrent_passes_send_each_delivery_once(
        self, db: Database, clock: FrozenClock, receiver: WebhookReceiver
    ) -> None:
        """Two processes' passes at the same moment share the due deliveries."""
        await register(db, clock, receiver.url)
        for _ in range(12):
            await emit(db, clock)
        await dispatched(db, clock)
        async with aiohttp.ClientSession() as one, aiohttp.ClientSession() as two:
            outcomes = await asyncio.gather(
                deliver_due(db, one, clock=clock, limit=8),
                deliver_due(db, two, clock=clock, limit=8),
                deliver_due(db, one, clock=clock, limit=8),
            )
        assert sum(len(o) for o in outcomes) == 12
        assert len(receiver.requests) == 12 and set(receiver.effects.values()) == {1}

    async def test_a_crashed_attempt_is_sent_again_after_its_lease(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        await register(db, clock, receiver.url)
        event = await emit(db, clock)
        await dispatched(db, clock)
        assert len(await claim_due(db, clock=clock)) == 1  # a process claims, then dies
        assert await deliver_due(db, http, clock=clock) == []
        clock.advance(LEASE_SECONDS - 1)
        assert await deliver_due(db, http, clock=clock) == []
        clock.advance(1)
        assert [o.status_code for o in await deliver_due(db, http, clock=clock)] == [200]
        assert receiver.effects == {event.id: 1}
        delivery = await only_delivery(db)
        assert delivery.status == "succeeded" and delivery.attempt_count == 1

    async def test_the_outcome_of_a_lost_lease_is_logged_but_moves_nothing(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        """A process that took longer than its lease: another claimed the delivery since,
        so only the holder of the current lease settles it."""
        await register(db, clock, receiver.url)
        await emit(db, clock)
        await dispatched(db, clock)
        (stale,) = await claim_due(db, clock=clock)
        clock.advance(LEASE_SECONDS)
        (current,) = await claim_due(db, clock=clock)
        failed = Outcome(clock.now(), False, 500, "HTTP 500", 10, "")
        await record(db, [(stale, failed)], clock=clock, rng=random.Random())
        delivery = await only_delivery(db)
        assert delivery.status == "pending" and delivery.attempt_count == 0
        assert [a.status_code for a in delivery.attempts] == [500]
        succeeded = Outcome(clock.now(), True, 200, None, 10, "")
        await record(db, [(current, succeeded)], clock=clock, rng=random.Random())
        delivery = await only_delivery(db)
        assert delivery.status == "succeeded" and delivery.attempt_count == 1


class TestRetryAndDisable:
    async def test_manual_retry_sends_a_failed_delivery_again(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        receiver.script = [500] * MAX_ATTEMPTS
        await register(db, clock, receiver.url)
        event = await emit(db, clock)
        await dispatched(db, clock)
        for _ in range(MAX_ATTEMPTS):
            await deliver_due(db, http, clock=clock)
            clock.advance(11 * 3600 * 1.2)
        failed = await only_delivery(db)
        assert failed.status == "failed" and receiver.effects == {}
        async with db.transaction() as session:
            retried = await webhooks.retry_delivery(session, failed.id, clock=clock)
        assert retried.status == "pending" and retried.next_attempt_at == clock.now()
        assert [o.status_code for o in await deliver_due(db, http, clock=clock)] == [200]
        delivery = await only_delivery(db)
        assert delivery.status == "succeeded" and delivery.attempt_count == MAX_ATTEMPTS + 1
        assert receiver.effects == {event.id: 1}

    async def test_manual_retry_of_a_pending_delivery_sends_it_now(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        receiver.script = [500]
        await register(db, clock, receiver.url)
        await emit(db, clock)
        await dispatched(db, clock)
        await deliver_due(db, http, clock=clock)
        assert await deliver_due(db, http, clock=clock) == []
        async with db.transaction() as session:
            await webhooks.retry_delivery(session, (await only_delivery(db)).id, clock=clock)
        assert [o.status_code for o in await deliver_due(db, http, clock=clock)] == [200]

    async def test_endpoint_failing_for_five_days_is_disabled(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        receiver.then = 500
        endpoint_id = (await register(db, clock, receiver.url)).endpoint.id
        dispatcher = await dispatched(db, clock)
        started = clock.now()
        for _ in range(6):  # an event a day, each failing
            await emit(db, clock)
            await dispatcher.dispatch()
            await deliver_due(db, http, clock=clock)
            async with db.sessions() as session:
                endpoint = await webhooks.get_endpoint(session, endpoint_id)
            assert endpoint.failing_since == started
            if clock.now() - started < timedelta(days=5):
                assert endpoint.enabled
            clock.advance(24 * 3600)
        assert not endpoint.enabled
        assert endpoint.disabled_reason == "every attempt failed for 5 days"
        assert endpoint.disabled_at == started + timedelta(days=5)
        sent = len(receiver.requests)
        await emit(db, clock)
        await dispatcher.dispatch()
        assert await deliver_due(db, http, clock=clock) == []  # pending ones wait
        assert len(receiver.requests) == sent

        receiver.then = 200
        async with db.transaction() as session:
            await webhooks.update_endpoint(session, endpoint_id, enabled=True, clock=clock)
        outcomes = await deliver_due(db, http, clock=clock)
        assert outcomes and all(o.succeeded for o in outcomes)
        async with db.sessions() as session:
            endpoint = await webhooks.get_endpoint(session, endpoint_id)
            failed = await webhooks.list_deliveries(session, status=DeliveryStatus.FAILED)
        assert endpoint.enabled and endpoint.failing_since is None
        assert failed.deliveries == []

    async def test_a_success_ends_the_failure_streak(
        self,
        db: Database,
        clock: FrozenClock,
        receiver: WebhookReceiver,
        http: aiohttp.ClientSession,
    ) -> None:
        receiver.script = [500]
        endpoint_id = (await register(db, clock, receiver.url)).endpoint.id
        await emit(db, clock)
        await dispatched(db, clock)
        await deliver_due(db, http, clock=clock)
        async with db.sessions() as session:
            assert (await webhooks.get_endpoint(session, endpoint_id)).failing_since is not None
        past_delay(clock, 1)
        await deliver_due(db, http, clock=clock)
        async with db.sessions() as session:
            assert (await webhooks.get_endpoint(session, endpoint_id)).failing_since is None
