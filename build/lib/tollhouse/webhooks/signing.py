"""What a delivery sends: the payload bytes and the Standard Webhooks headers that sign them.

Standard Webhooks (https://www.standardwebhooks.com, spec "Signature scheme"): the signed
content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is HMAC-SHA256 of it with
the secret's key (the base64 part after `whsec_`), sent base64-encoded as `v1,<signature>` in
`webhook-signature`. `webhook-id` is the event id (the same on every attempt, so a receiver
can drop duplicates); `webhook-timestamp` is the attempt's time in integer Unix seconds (a
receiver refuses one more than 5 minutes away from its clock). The signing itself is the
`standardwebhooks` reference library's.
"""

from __future__ import annotations

import base64
import math
import secrets
from datetime import UTC, datetime

import orjson
from standardwebhooks import Webhook

from tollhouse.events import EventView

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
"""Random bytes of a new secret (the spec asks for 24 to 64)."""
USER_AGENT = "tollhouse-webhooks/0.1"


def new_secret() -> str:
    """A new signing secret: `whsec_` and the base64 of 32 random bytes (`secrets`)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def payload(event: EventView) -> bytes:
    """The body POSTed for `event`, the shape of the spec's example payload plus the event's
    id and customer: `{"id", "type", "timestamp" (RFC 3339, when it happened), "customer_id"
    (null for an operator-wide event), "data"}` as compact UTF-8 JSON. The same bytes on
    every attempt."""
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "timestamp": _rfc3339(event.created_at),
            "customer_id": event.customer_id,
            "data": event.data,
        }
    )


def signed_headers(
    secret: str, *, message_id: str, timestamp: datetime, body: bytes
) -> dict[str, str]:
    """The request headers of one attempt: `webhook-id`, `webhook-timestamp` (Unix seconds of
    `timestamp`, rounded down), `webhook-signature` (`v1,<base64>`), `content-type` and
    `user-agent`.

    Raises:
        binascii.Error: `secret` is not `whsec_` and base64 (a secret tollhouse made always is).
    """
    whole_seconds = datetime.fromtimestamp(math.floor(timestamp.timestamp()), UTC)
    signature = Webhook(secret).sign(message_id, whole_seconds, body.decode())
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(math.floor(timestamp.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }
