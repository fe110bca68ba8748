"""The clients' resource groups, one attribute per group.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from tollhouse.sdk._base import AsyncRequester, Requester
from tollhouse.sdk.resources.auto_top_up import AsyncAutoTopUpResource, AutoTopUpResource
from tollhouse.sdk.resources.catalog import AsyncCatalogResource, CatalogResource
from tollhouse.sdk.resources.checkout import AsyncCheckoutResource, CheckoutResource
from tollhouse.sdk.resources.credit_alerts import AsyncCreditAlertsResource, CreditAlertsResource
from tollhouse.sdk.resources.credits import AsyncCreditsResource, CreditsResource
from tollhouse.sdk.resources.customers import AsyncCustomersResource, CustomersResource
from tollhouse.sdk.resources.events import AsyncEventsResource, EventsResource
from tollhouse.sdk.resources.health import AsyncHealthResource, HealthResource
from tollhouse.sdk.resources.holds import AsyncHoldsResource, HoldsResource
from tollhouse.sdk.resources.invoices import AsyncInvoicesResource, InvoicesResource
from tollhouse.sdk.resources.keys import AsyncKeysResource, KeysResource
from tollhouse.sdk.resources.payments import AsyncPaymentsResource, PaymentsResource
from tollhouse.sdk.resources.refunds import AsyncRefundsResource, RefundsResource
from tollhouse.sdk.resources.sessions import AsyncSessionsResource, SessionsResource
from tollhouse.sdk.resources.subscriptions import AsyncSubscriptionsResource, SubscriptionsResource
from tollhouse.sdk.resources.usage import AsyncUsageResource, UsageResource
from tollhouse.sdk.resources.webhook_deliveries import (
    AsyncWebhookDeliveriesResource,
    WebhookDeliveriesResource,
)
from tollhouse.sdk.resources.webhook_endpoints import (
    AsyncWebhookEndpointsResource,
    WebhookEndpointsResource,
)


class Resources:
    """`client.<group>.<method>(...)`: each group of the control API."""

    health: HealthResource
    customers: CustomersResource
    keys: KeysResource
    credits: CreditsResource
    credit_alerts: CreditAlertsResource
    usage: UsageResource
    holds: HoldsResource
    sessions: SessionsResource
    catalog: CatalogResource
    subscriptions: SubscriptionsResource
    events: EventsResource
    webhook_endpoints: WebhookEndpointsResource
    webhook_deliveries: WebhookDeliveriesResource
    invoices: InvoicesResource
    refunds: RefundsResource
    payments: PaymentsResource
    checkout: CheckoutResource
    auto_top_up: AutoTopUpResource

    def _attach_resources(self, requester: Requester) -> None:
        self.health = HealthResource(requester)
        self.customers = CustomersResource(requester)
        self.keys = KeysResource(requester)
        self.credits = CreditsResource(requester)
        self.credit_alerts = CreditAlertsResource(requester)
        self.usage = UsageResource(requester)
        self.holds = HoldsResource(requester)
        self.sessions = SessionsResource(requester)
        self.catalog = CatalogResource(requester)
        self.subscriptions = SubscriptionsResource(requester)
        self.events = EventsResource(requester)
        self.webhook_endpoints = WebhookEndpointsResource(requester)
        self.webhook_deliveries = WebhookDeliveriesResource(requester)
        self.invoices = InvoicesResource(requester)
        self.refunds = RefundsResource(requester)
        self.payments = PaymentsResource(requester)
        self.checkout = CheckoutResource(requester)
        self.auto_top_up = AutoTopUpResource(requester)


class AsyncResources:
    """`client.<group>.<method>(...)`: each group of the control API."""

    health: AsyncHealthResource
    customers: AsyncCustomersResource
    keys: AsyncKeysResource
    credits: AsyncCreditsResource
    credit_alerts: AsyncCreditAlertsResource
    usage: AsyncUsageResource
    holds: AsyncHoldsResource
    sessions: AsyncSessionsResource
    catalog: AsyncCatalogResource
    subscriptions: AsyncSubscriptionsResource
    events: AsyncEventsResource
    webhook_endpoints: AsyncWebhookEndpointsResource
    webhook_deliveries: AsyncWebhookDeliveriesResource
    invoices: AsyncInvoicesResource
    refunds: AsyncRefundsResource
    payments: AsyncPaymentsResource
    checkout: AsyncCheckoutResource
    auto_top_up: AsyncAutoTopUpResource

    def _attach_resources(self, requester: AsyncRequester) -> None:
        self.health = AsyncHealthResource(requester)
        self.customers = AsyncCustomersResource(requester)
        self.keys = AsyncKeysResource(requester)
        self.credits = AsyncCreditsResource(requester)
        self.credit_alerts = AsyncCreditAlertsResource(requester)
        self.usage = AsyncUsageResource(requester)
        self.holds = AsyncHoldsResource(requester)
        self.sessions = AsyncSessionsResource(requester)
        self.catalog = AsyncCatalogResource(requester)
        self.subscriptions = AsyncSubscriptionsResource(requester)
        self.events = AsyncEventsResource(requester)
        self.webhook_endpoints = AsyncWebhookEndpointsResource(requester)
        self.webhook_deliveries = AsyncWebhookDeliveriesResource(requester)
        self.invoices = AsyncInvoicesResource(requester)
        self.refunds = AsyncRefundsResource(requester)
        self.payments = AsyncPaymentsResource(requester)
        self.checkout = AsyncCheckoutResource(requester)
        self.auto_top_up = AsyncAutoTopUpResource(requester)
