"""Retries against a live server, the lost answer made real: the test transport forwards the
request, lets the server handle it, then drops the answer (as a connection reset after the
server committed would), or answers 503 once without forwarding.

Story: a grant, an authorization and a capture whose first answer is lost are sent again,
with the same idempotency key, and the wallet moves once. A call that is not safe to repeat
(creating a customer: no key) is not retried after a lost answer or a 5xx: the caller gets
the error. A 429 (nothing was done) is retried on any call; `Retry-After: 0` is honoured.
"""

from __future__ import annotations

import json

import pytest
from tests.sdk.conftest import (
    GRANT_MICROS,
    AsyncLossyTransport,
    LosesAnswers,
    LossyTransport,
    Server,
)
from tests.support.catalog import IMAGE_MICROS, SESSION_PRICE_MICROS

from tollhouse import APIConnectionError, AsyncClient, Client, InternalServerError
from tollhouse.sdk.models import EventIn


def lossy_client(server: Server, loses: LosesAnswers, **options: int) -> Client:
    return Client(
        base_url=server.base_url,
        api_key=server.operator_key,
        transport=LossyTransport(loses),
        **options,  # type: ignore[arg-type]
    )


def keys_sent(loses: LosesAnswers) -> list[str]:
    return [json.loads(body)["idempotency_key"] for body in loses.bodies]


class TestSync:
    def test_grant_whose_answer_was_lost_adds_credits_once(
        self, server: Server, operator: Client
    ) -> None:
        customer = operator.customers.create(name="Ada")
        loses = LosesAnswers("/credits/grants")

        with lossy_client(server, loses) as client:
            grant = client.credits.grant(customer.id, amount_micros=GRANT_MICROS)

        sent = keys_sent(loses)
        assert len(sent) == 2 and sent[0] == sent[1]  # one key, sent twice
        balance = operator.credits.balance(customer.id)
        assert balance.available_micros == GRANT_MICROS
        assert [g.id for g in balance.grants] == [grant.id]

    def test_authorize_and_capture_whose_answers_were_lost_charge_once(
        self, server: Server, operator: Client, funded_customer: str
    ) -> None:
        authorizing, capturing = LosesAnswers("/v1/authorize"), LosesAnswers("/capture")

        with lossy_client(server, authorizing) as client:
            authorized = client.holds.authorize(
                model="test-image", customer_id=funded_customer, usage={"images": 2}
            )
        held = operator.credits.balance(funded_customer)
        assert authorized.hold is not None
        with lossy_client(server, capturing) as client:
            captured = client.holds.capture(authorized.hold.id, amount_micros=IMAGE_MICROS)

        assert len(set(keys_sent(authorizing))) == 1 and len(authorizing.bodies) == 2
        assert held.held_micros == 2 * IMAGE_MICROS  # one hold, not two
        assert len(capturing.bodies) == 2 and capturing.bodies[0] == capturing.bodies[1]
        assert captured.captured_micros == IMAGE_MICROS
        balance = operator.credits.balance(funded_customer)
        assert (balance.available_micros, balance.held_micros) == (
            GRANT_MICROS - IMAGE_MICROS,
            0,
        )
        debits = [e for e in operator.credits.transactions(funded_customer) if e.amount_micros < 0]
        assert sum(e.amount_micros for e in debits if e.kind == "capture") == -IMAGE_MICROS

    def test_session_start_whose_answer_was_lost_charges_its_fee_once(
        self, server: Server, operator: Client, funded_customer: str
    ) -> None:
        loses = LosesAnswers("/v1/sessions")

        with lossy_client(server, loses) as client:
            started = client.sessions.start(product="analysis", customer_id=funded_customer)

        assert len(loses.bodies) == 2 and len(set(keys_sent(loses))) == 1
        assert [s.id for s in operator.sessions.current(customer_id=funded_customer)] == [
            started.id
        ]
        balance = operator.credits.balance(funded_customer)
        assert balance.available_micros == GRANT_MICROS - SESSION_PRICE_MICROS

    def test_usage_events_whose_answer_was_lost_count_once(
        self, server: Server, operator: Client, funded_customer: str
    ) -> None:
        loses = LosesAnswers("/v1/usage/events")
        event: EventIn = {
            "id": "job-1",
            "customer_id": funded_customer,
            "meter": "input_tokens",
            "value": 300,
        }

        with lossy_client(server, loses) as client:
            recorded = client.usage.record(events=[event])

        assert len(loses.bodies) == 2
        assert (recorded.accepted, recorded.duplicates) == (0, 1)  # the lost answer said 1, 0
        usage = operator.usage.query(customer_id=funded_customer, meter=["input_tokens"])
        assert [bucket.value for bucket in usage.buckets] == [300]  # summed once

    def test_call_without_a_key_is_not_sent_again(self, server: Server, operator: Client) -> None:
        loses = LosesAnswers("/v1/customers")

        with lossy_client(server, loses) as client:
            with pytest.raises(APIConnectionError):
                client.customers.create(name="Once", external_id="sdk-not-retried")

        assert len(loses.bodies) == 1
        assert any(c.external_id == "sdk-not-retried" for c in operator.customers.list())

    def test_503_is_retried_after_its_retry_after(self, server: Server, operator: Client) -> None:
        customer = operator.customers.create(name="Patient")
        loses = LosesAnswers("/credits/grants", count=2, status=503)

        with lossy_client(server, loses) as client:
            client.credits.grant(customer.id, amount_micros=GRANT_MICROS)

        assert len(loses.bodies) == 3 and len(set(keys_sent(loses))) == 1
        assert operator.credits.balance(customer.id).available_micros == GRANT_MICROS

    def test_429_is_retried_even_without_a_key(self, server: Server) -> None:
        loses = LosesAnswers("/v1/customers", status=429)

        with lossy_client(server, loses) as client:
            customer = client.customers.create(name="Denied once")

        assert len(loses.bodies) == 2 and customer.name == "Denied once"

    def test_503_is_not_retried_without_a_key(self, server: Server) -> None:
        loses = LosesAnswers("/v1/customers", status=503)

        with lossy_client(server, loses) as client:
            with pytest.raises(InternalServerError):
                client.customers.create(name="Maybe")

        assert len(loses.bodies) == 1

    def test_retries_stop_at_max_retries(self, server: Server) -> None:
        loses = LosesAnswers("/health", count=5, status=503)

        with lossy_client(server, loses, max_retries=1) as client:
            with pytest.raises(InternalServerError) as raised:
                client.health.check()

        assert raised.value.status == 503
        assert len(loses.bodies) == 2


class TestAsync:
    async def test_capture_whose_answer_was_lost_charges_once(
        self, server: Server, operator: Client, funded_customer: str
    ) -> None:
        loses = LosesAnswers("/capture")
        async with AsyncClient(
            base_url=server.base_url,
            api_key=server.operator_key,
            transport=AsyncLossyTransport(loses),
        ) as client:
            authorized = await client.holds.authorize(
                model="test-image", customer_id=funded_customer, usage={"images": 1}
            )
            assert authorized.hold is not None
            captured = await client.holds.capture(authorized.hold.id, amount_micros=IMAGE_MICROS)
            granted = await client.credits.grant(funded_customer, amount_micros=7)

        assert len(loses.bodies) == 2 and captured.captured_micros == IMAGE_MICROS
        balance = operator.credits.balance(funded_customer)
        assert balance.available_micros == GRANT_MICROS - IMAGE_MICROS + granted.amount_micros
