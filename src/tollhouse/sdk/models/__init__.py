"""Every model of the SDK, by name.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from tollhouse.sdk.models.auto_top_up import AutoTopUp
from tollhouse.sdk.models.catalog import Catalog, CatalogModel, Category, Plan, Price
from tollhouse.sdk.models.checkout import Checkout, SessionPackItem
from tollhouse.sdk.models.credit_alerts import CreditAlert
from tollhouse.sdk.models.credits import Balance, Grant, Transaction
from tollhouse.sdk.models.customers import Customer
from tollhouse.sdk.models.events import Event, EventList
from tollhouse.sdk.models.health import Health, Ready
from tollhouse.sdk.models.holds import Authorization, Hold, SessionUse, UsageEstimate
from tollhouse.sdk.models.invoices import Invoice, InvoiceLine, PeriodClose
from tollhouse.sdk.models.keys import IssuedKey, Key, KeyUsage, RotatedKey
from tollhouse.sdk.models.payments import Payment, PaymentRefund
from tollhouse.sdk.models.refunds import Refund
from tollhouse.sdk.models.sessions import Estimate, Pack, QuotaList, Session, SessionQuota
from tollhouse.sdk.models.subscriptions import (
    MeterQuota,
    PlanChange,
    Subscription,
    SubscriptionChange,
)
from tollhouse.sdk.models.usage import Bucket, EventIn, RecordedEvents, Usage
from tollhouse.sdk.models.webhook_deliveries import (
    DeliveryAttempt,
    DeliveryStatus,
    WebhookDelivery,
    WebhookDeliveryList,
)
from tollhouse.sdk.models.webhook_endpoints import CreatedWebhookEndpoint, WebhookEndpoint

__all__ = [
    "Authorization",
    "AutoTopUp",
    "Balance",
    "Bucket",
    "Catalog",
    "CatalogModel",
    "Category",
    "Checkout",
    "CreatedWebhookEndpoint",
    "CreditAlert",
    "Customer",
    "DeliveryAttempt",
    "DeliveryStatus",
    "Estimate",
    "Event",
    "EventIn",
    "EventList",
    "Grant",
    "Health",
    "Hold",
    "Invoice",
    "InvoiceLine",
    "IssuedKey",
    "Key",
    "KeyUsage",
    "MeterQuota",
    "Pack",
    "Payment",
    "PaymentRefund",
    "PeriodClose",
    "Plan",
    "PlanChange",
    "Price",
    "QuotaList",
    "Ready",
    "RecordedEvents",
    "Refund",
    "RotatedKey",
    "Session",
    "SessionPackItem",
    "SessionQuota",
    "SessionUse",
    "Subscription",
    "SubscriptionChange",
    "Transaction",
    "Usage",
    "UsageEstimate",
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookEndpoint",
]
