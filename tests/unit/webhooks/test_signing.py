"""Signing per Standard Webhooks: tollhouse's headers verify with the reference library and
with the spec's algorithm written out (`tests.support.receiver.spec_signature`)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook, WebhookVerificationError
from tests.support.receiver import spec_signature

from tollhouse.events import EventView
from tollhouse.webhooks import signing

EVENT = EventView(
    id="evt_0Pv1Wd2kAAAAAAAAAAAAAA",
    type="session.ended",
    customer_id="cus_0000000000000000000001",
    data={"session_id": "ses_1", "reason": "duration", "fee_micros": 1_000_000, "note": "é"},
    created_at=datetime(2026, 3, 15, 12, 0, 0, 250_000, tzinfo=UTC),
)


class TestSecret:
    def test_a_secret_is_whsec_and_32_random_bytes(self) -> None:
        secret = signing.new_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
        assert signing.new_secret() != secret


class TestPayload:
    def test_payload_has_the_spec_shape_and_the_event(self) -> None:
        assert json.loads(signing.payload(EVENT)) == {
            "id": EVENT.id,
            "type": "session.ended",
            "timestamp": "2026-03-15T12:00:00.250000Z",
            "customer_id": EVENT.customer_id,
            "data": EVENT.data,
        }

    def test_payload_is_the_same_bytes_every_time(self) -> None:
        assert signing.payload(EVENT) == signing.payload(EVENT)


class TestHeaders:
    def headers(self, secret: str, moment: datetime) -> dict[str, str]:
        return signing.signed_headers(
            secret, message_id=EVENT.id, timestamp=moment, body=signing.payload(EVENT)
        )

    def test_headers_name_the_event_and_the_whole_second(self) -> None:
        moment = datetime(2026, 3, 15, 12, 0, 7, 900_000, tzinfo=UTC)
        headers = self.headers(signing.new_secret(), moment)
        assert headers["webhook-id"] == EVENT.id
        assert headers["webhook-timestamp"] == str(int(moment.timestamp()))
        assert headers["webhook-signature"].startswith("v1,")
        assert headers["content-type"] == "application/json"

    def test_the_reference_verifier_accepts_the_signature(self) -> None:
        secret = signing.new_secret()
        body = signing.payload(EVENT)
        headers = self.headers(secret, datetime.now(UTC))
        assert Webhook(secret).verify(body, headers) == json.loads(body)

    def test_the_spec_algorithm_gives_the_same_signature(self) -> None:
        secret = signing.new_secret()
        headers = self.headers(secret, datetime(2026, 3, 15, 12, 0, 7, tzinfo=UTC))
        assert headers["webhook-signature"] == spec_signature(
            secret,
            message_id=headers["webhook-id"],
            timestamp=headers["webhook-timestamp"],
            body=signing.payload(EVENT),
        )

    def test_another_secret_or_a_changed_body_does_not_verify(self) -> None:
        secret = signing.new_secret()
        headers = self.headers(secret, datetime.now(UTC))
        with pytest.raises(WebhookVerificationError):
            Webhook(signing.new_secret()).verify(signing.payload(EVENT), headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(signing.payload(EVENT) + b" ", headers)
