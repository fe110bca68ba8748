"""The SDK's map of the control API: each client method and the route it calls.

`codegen` writes the resource classes from this table and the OpenAPI document (parameters,
request members, answer models); `tests/sdk/test_coverage.py` checks it both ways: every
route of the document has a method here (or is listed in `NOT_IN_SDK` with its reason), and
every method here names a route of the document and exists on both clients.
"""

from __future__ import annotations

from dataclasses import dataclass

from tollhouse.sdk.pagination import Cursor


@dataclass(frozen=True)
class Operation:
    """`client.<resource>.<name>(...)` calls `<http_method> <path>`."""

    resource: str
    name: str
    http_method: str
    path: str
    cursor: Cursor | None = None
    """A list route paged by cursor: the method returns a page iterator."""
    idempotent: bool = False
    """A `POST` the server applies once however often it is sent, without a key (capturing
    a hold at the same amount, voiding it): retried like a read. `GET`, `PUT`, `PATCH`,
    `DELETE` and calls carrying an idempotency key are retried anyway."""


def _op(
    resource: str,
    name: str,
    http_method: str,
    path: str,
    *,
    cursor: Cursor | None = None,
    idempotent: bool = False,
) -> Operation:
    return Operation(resource, name, http_method, path, cursor, idempotent)


AFTER_ID = Cursor("after")
BEFORE_ID = Cursor("before")
BEFORE_ROW_ID = Cursor("before_id")

OPERATIONS: tuple[Operation, ...] = (
    _op("health", "check", "GET", "/health"),
    _op("health", "ready", "GET", "/ready"),
    _op("health", "live", "GET", "/healthz"),
    _op("customers", "create", "POST", "/v1/customers"),
    _op("customers", "list", "GET", "/v1/customers", cursor=AFTER_ID),
    _op("customers", "retrieve", "GET", "/v1/customers/{customer_id}"),
    _op("customers", "update", "PATCH", "/v1/customers/{customer_id}"),
    _op("keys", "create", "POST", "/v1/customers/{customer_id}/keys"),
    _op("keys", "list", "GET", "/v1/customers/{customer_id}/keys"),
    _op("keys", "retrieve", "GET", "/v1/keys/{key_id}"),
    _op("keys", "revoke", "DELETE", "/v1/keys/{key_id}"),
    _op("keys", "rotate", "POST", "/v1/keys/{key_id}/rotate"),
    _op("keys", "usage", "GET", "/v1/keys/{key_id}/usage"),
    _op("credits", "grant", "POST", "/v1/customers/{customer_id}/credits/grants"),
    _op("credits", "balance", "GET", "/v1/customers/{customer_id}/balance"),
    _op(
        "credits",
        "transactions",
        "GET",
        "/v1/customers/{customer_id}/transactions",
        cursor=BEFORE_ROW_ID,
    ),
    _op("credits", "set_overdraft", "PUT", "/v1/customers/{customer_id}/overdraft"),
    _op("credits", "revoke_grant", "DELETE", "/v1/grants/{grant_id}"),
    _op("credit_alerts", "retrieve", "GET", "/v1/customers/{customer_id}/credit-alerts"),
    _op("credit_alerts", "set", "PUT", "/v1/customers/{customer_id}/credit-alerts"),
    _op("credit_alerts", "delete", "DELETE", "/v1/customers/{customer_id}/credit-alerts"),
    _op("usage", "query", "GET", "/v1/usage"),
    _op("usage", "record", "POST", "/v1/usage/events", idempotent=True),
    _op("holds", "authorize", "POST", "/v1/authorize"),
    _op("holds", "retrieve", "GET", "/v1/holds/{hold_id}"),
    _op("holds", "capture", "POST", "/v1/holds/{hold_id}/capture", idempotent=True),
    _op("holds", "void", "POST", "/v1/holds/{hold_id}/void", idempotent=True),
    _op("sessions", "start", "POST", "/v1/sessions"),
    _op("sessions", "list", "GET", "/v1/sessions"),
    _op("sessions", "estimate", "POST", "/v1/sessions/estimate", idempotent=True),
    _op("sessions", "current", "GET", "/v1/sessions/current"),
    _op("sessions", "quota", "GET", "/v1/sessions/quota"),
    _op("sessions", "buy_pack", "POST", "/v1/sessions/quota/add"),
    _op("sessions", "retrieve", "GET", "/v1/sessions/{session_id}"),
    _op("sessions", "heartbeat", "POST", "/v1/sessions/{session_id}/heartbeat"),
    _op("sessions", "terminate", "POST", "/v1/sessions/{session_id}/terminate", idempotent=True),
    _op("catalog", "retrieve", "GET", "/v1/catalog"),
    _op("catalog", "plans", "GET", "/v1/plans"),
    _op("subscriptions", "current", "GET", "/v1/subscription/me"),
    _op("subscriptions", "usage", "GET", "/v1/subscription/usage"),
    _op("subscriptions", "history", "GET", "/v1/subscription/history", cursor=BEFORE_ROW_ID),
    _op("subscriptions", "change", "POST", "/v1/subscription/change"),
    _op("subscriptions", "cancel", "POST", "/v1/subscription/cancel"),
    _op("subscriptions", "resume", "POST", "/v1/subscription/resume"),
    _op("subscriptions", "retrieve", "GET", "/v1/customers/{customer_id}/subscription"),
    _op("subscriptions", "set_plan", "PUT", "/v1/customers/{customer_id}/subscription"),
    _op(
        "subscriptions",
        "set_payment_method",
        "PUT",
        "/v1/customers/{customer_id}/subscription/payment-method",
    ),
    _op("events", "list", "GET", "/v1/events", cursor=Cursor("after", envelope=True)),
    _op("webhook_endpoints", "list", "GET", "/v1/webhook-endpoints"),
    _op("webhook_endpoints", "create", "POST", "/v1/webhook-endpoints"),
    _op("webhook_endpoints", "retrieve", "GET", "/v1/webhook-endpoints/{endpoint_id}"),
    _op("webhook_endpoints", "update", "PATCH", "/v1/webhook-endpoints/{endpoint_id}"),
    _op("webhook_endpoints", "delete", "DELETE", "/v1/webhook-endpoints/{endpoint_id}"),
    _op(
        "webhook_deliveries",
        "list",
        "GET",
        "/v1/webhook-deliveries",
        cursor=Cursor("before", envelope=True),
    ),
    _op("webhook_deliveries", "retrieve", "GET", "/v1/webhook-deliveries/{delivery_id}"),
    _op("webhook_deliveries", "retry", "POST", "/v1/webhook-deliveries/{delivery_id}/retry"),
    _op("invoices", "list", "GET", "/v1/invoices", cursor=BEFORE_ID),
    _op("invoices", "close_periods", "POST", "/v1/billing/close", idempotent=True),
    _op("invoices", "html", "GET", "/v1/invoices/{invoice_id}.html"),
    _op("invoices", "pdf", "GET", "/v1/invoices/{invoice_id}.pdf"),
    _op("invoices", "retrieve", "GET", "/v1/invoices/{invoice_id}"),
    _op("invoices", "pay", "POST", "/v1/invoices/{invoice_id}/pay"),
    _op("invoices", "void", "POST", "/v1/invoices/{invoice_id}/void"),
    _op("invoices", "mark_uncollectible", "POST", "/v1/invoices/{invoice_id}/mark-uncollectible"),
    _op("refunds", "create", "POST", "/v1/refunds"),
    _op("payments", "list", "GET", "/v1/payments", cursor=BEFORE_ID),
    _op("payments", "create", "POST", "/v1/payments"),
    _op("payments", "retrieve", "GET", "/v1/payments/{payment_id}"),
    _op("payments", "refund", "POST", "/v1/payments/{payment_id}/refund"),
    _op("checkout", "create", "POST", "/v1/checkout"),
    _op("checkout", "retrieve", "GET", "/v1/checkout/{checkout_id}"),
    _op("auto_top_up", "retrieve", "GET", "/v1/customers/{customer_id}/auto-top-up"),
    _op("auto_top_up", "set", "PUT", "/v1/customers/{customer_id}/auto-top-up"),
)

GATEWAY_PATHS: tuple[str, ...] = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/images/generations",
    "/v1/audio/speech",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/moderations",
    "/v1/models",
    "/v1/responses",
    "/v1/messages",
    "/v1/messages/count_tokens",
)

NOT_IN_SDK: dict[tuple[str, str], str] = {
    **{
        ("POST" if path != "/v1/models" else "GET", path): "gateway: use the openai or "
        "anthropic SDK with base_url pointing at tollhouse"
        for path in GATEWAY_PATHS
    },
    ("POST", "/v1/payments/stripe/webhook"): "Stripe calls it, signed; no API key",
}
"""Routes of the OpenAPI document the SDK leaves out on purpose, with the reason."""
