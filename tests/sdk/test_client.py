"""`tollhouse.Client` against a live `tollhouse serve`.

Story: an operator creates a customer, gives it a key and $5 of credits; the customer's key
reads its own wallet; a job is authorized for two images (80,000 micros held) and captured
for one (40,000); a $1 session is started and stopped; the ledger is read back page by page.
Errors come back as the exception of their status, with the problem's `type` and members.
"""

from __future__ import annotations

import pytest
from tests.sdk.conftest import GRANT_MICROS, Server
from tests.support.catalog import IMAGE_MICROS, SESSION_PRICE_MICROS, TEXT_RPM_FREE

from tollhouse import (
    AuthenticationError,
    Client,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from tollhouse.sdk.models import Customer, IssuedKey

PROBLEMS = "https://tollhouse.dev/problems/"


class TestResources:
    def test_customer_key_and_grant(self, operator: Client, server: Server) -> None:
        customer = operator.customers.create(name="Ada", email="ada@example.com")
        key = operator.keys.create(customer.id, name="laptop")
        grant = operator.credits.grant(customer.id, amount_micros=GRANT_MICROS)

        with Client(base_url=server.base_url, api_key=key.key) as own:
            me = own.customers.retrieve("me")
            balance = own.credits.balance("me")

        assert isinstance(customer, Customer) and customer.email == "ada@example.com"
        assert isinstance(key, IssuedKey) and key.key.startswith("th_")
        assert grant.amount_micros == grant.remaining_micros == GRANT_MICROS
        assert me.id == customer.id
        assert balance.available_micros == GRANT_MICROS
        assert [g.id for g in balance.grants] == [grant.id]

    def test_authorize_then_capture_charges_the_actual_cost(
        self, operator: Client, funded_customer: str
    ) -> None:
        authorized = operator.holds.authorize(
            model="test-image", customer_id=funded_customer, usage={"images": 2}
        )
        assert authorized.allowed and authorized.hold is not None
        held = operator.credits.balance(funded_customer)

        captured = operator.holds.capture(authorized.hold.id, amount_micros=IMAGE_MICROS)
        after = operator.credits.balance(funded_customer)

        assert authorized.amount_micros == authorized.hold.amount_micros == 2 * IMAGE_MICROS
        assert held.held_micros == 2 * IMAGE_MICROS
        assert captured.status == "captured" and captured.captured_micros == IMAGE_MICROS
        assert after.held_micros == 0
        assert after.available_micros == GRANT_MICROS - IMAGE_MICROS

    def test_session_start_and_stop(self, operator: Client, funded_customer: str) -> None:
        started = operator.sessions.start(product="analysis", customer_id=funded_customer)
        current = operator.sessions.current(customer_id=funded_customer)
        stopped = operator.sessions.terminate(started.id)

        assert started.status == "active" and started.fee_micros == SESSION_PRICE_MICROS
        assert [s.id for s in current] == [started.id]
        assert stopped.status == "ended"
        balance = operator.credits.balance(funded_customer)
        assert balance.available_micros == GRANT_MICROS - SESSION_PRICE_MICROS

    def test_lists_iterate_past_the_first_page(
        self, operator: Client, funded_customer: str
    ) -> None:
        for _ in range(4):
            operator.credits.grant(funded_customer, amount_micros=1)
        created = {operator.customers.create(name=f"Page {n}").id for n in range(3)}

        entries = list(operator.credits.transactions(funded_customer, limit=2))
        customers = [c.id for c in operator.customers.list(limit=2)]

        assert len(entries) == 5  # three pages of at most two
        assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
        assert created <= set(customers)
        assert customers == sorted(set(customers))

    def test_events_page_through_the_envelope(self, operator: Client, funded_customer: str) -> None:
        started = operator.sessions.start(product="analysis", customer_id=funded_customer)
        operator.sessions.terminate(started.id)

        events = list(operator.events.list(customer_id=funded_customer, limit=1))

        types = [event.type for event in events]
        assert {"session.started", "session.ended"} <= set(types)
        assert len({event.id for event in events}) == len(events) >= 2


class TestErrors:
    def test_unknown_customer_is_not_found(self, operator: Client) -> None:
        with pytest.raises(NotFoundError) as raised:
            operator.customers.retrieve("cus_nobody")

        assert raised.value.status == 404
        assert raised.value.type == PROBLEMS + "customer-not-found"
        assert raised.value.code == "customer-not-found"
        assert "cus_nobody" in raised.value.detail

    def test_unknown_key_is_an_authentication_error(self, server: Server) -> None:
        with Client(base_url=server.base_url, api_key="th_live_nope") as stranger:
            with pytest.raises(AuthenticationError) as raised:
                stranger.customers.retrieve("me")

        assert raised.value.status == 401
        assert raised.value.type.startswith(PROBLEMS)

    def test_customer_key_may_not_create_customers(
        self, operator: Client, server: Server, funded_customer: str
    ) -> None:
        key = operator.keys.create(funded_customer)
        with Client(base_url=server.base_url, api_key=key.key) as own:
            with pytest.raises(PermissionDeniedError) as raised:
                own.customers.create(name="Eve")

        assert raised.value.status == 403

    def test_empty_wallet_is_payment_required(self, operator: Client) -> None:
        broke = operator.customers.create(name="Broke")

        with pytest.raises(PaymentRequiredError) as raised:
            operator.holds.authorize(model="test-image", customer_id=broke.id, usage={"images": 1})

        assert raised.value.type == PROBLEMS + "insufficient-credit"

    def test_key_reused_for_another_grant_is_unprocessable(
        self, operator: Client, funded_customer: str
    ) -> None:
        operator.credits.grant(funded_customer, amount_micros=1, idempotency_key="once")

        with pytest.raises(UnprocessableEntityError) as raised:
            operator.credits.grant(funded_customer, amount_micros=2, idempotency_key="once")

        assert raised.value.code == "idempotency-key-reused"
        assert raised.value.extra["fields"] == ["amount"]

    def test_invalid_input_lists_the_member(self, operator: Client) -> None:
        with pytest.raises(UnprocessableEntityError) as raised:
            operator.customers.create(name="Ada", timezone="Mars/Olympus")

        assert raised.value.code == "invalid-input"
        assert [error["loc"] for error in raised.value.extra["errors"]] == ["body.timezone"]

    def test_rate_limit_carries_its_retry_after(
        self, operator: Client, server: Server, funded_customer: str
    ) -> None:
        with Client(base_url=server.base_url, api_key=server.operator_key, max_retries=0) as once:
            with pytest.raises(RateLimitError) as raised:
                for _ in range(TEXT_RPM_FREE + 1):
                    once.holds.authorize(model="test-chat", customer_id=funded_customer)

        assert raised.value.status == 429
        assert int(raised.value.headers["Retry-After"]) >= 1
