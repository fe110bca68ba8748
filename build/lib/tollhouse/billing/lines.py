"""An invoice's lines from what it bills: pure functions, no I/O.

Order on the document: the subscription charges (fee, prorations) as recorded; then the
wallet purchases (flat sessions' fees, session packs), one line per product and price with
its quantity; then `credits_applied`, minus what those purchases already took from the
wallet; then the credits bought with money (one `credit_purchase` line per payment: a credit
pack, an auto top-up, a manual payment) and `payment_applied`, minus what those payments
paid; then tax, the customer's country's rate over the sum of every line above
(`terms.tax_micros`, rounded once, half to even).

So the total is what the customer still owes: the subscription's charges and their tax.
Purchases are listed because the invoice is the period's statement, and netted because they
were paid when they were made: from the wallet (credits are billed when they are bought, or
with the plan that includes them) or by the payment that bought the credits. They are never
charged or taxed twice.

A line's `amount_micros` is `quantity * unit_amount_micros`, exact; nothing is rounded but
the tax line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from tollhouse.billing.models import LineKind
from tollhouse.billing.terms import tax_micros


class Charge(Protocol):
    """A recorded subscription charge (`subscriptions.SubscriptionCharge`)."""

    @property
    def kind(self) -> str: ...
    @property
    def amount_micros(self) -> int: ...
    @property
    def description(self) -> str: ...
    @property
    def period_start(self) -> datetime: ...
    @property
    def period_end(self) -> datetime: ...
    @property
    def idempotency_key(self) -> str: ...


class CreditPayment(Protocol):
    """A payment that bought credits (`payments.PaymentView`)."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def item(self) -> str: ...
    @property
    def provider(self) -> str: ...
    @property
    def amount_micros(self) -> int: ...


class Purchase(Protocol):
    """A wallet purchase (`sessions.service.Purchase`)."""

    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def sessions(self) -> int: ...
    @property
    def amount_micros(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Line:
    """A line to write. Money in micros."""

    kind: LineKind
    description: str
    quantity: int
    unit_amount_micros: int
    period_start: datetime | None = None
    period_end: datetime | None = None

    @property
    def amount_micros(self) -> int:
        """`quantity * unit_amount_micros`."""
        return self.quantity * self.unit_amount_micros


def charge_reference(charge: Charge) -> str:
    """The `invoice_items` reference that marks a subscription charge billed."""
    return f"charge:{charge.idempotency_key}"


def purchase_reference(purchase: Purchase) -> str:
    """The `invoice_items` reference that marks a wallet purchase billed."""
    prefix = "session" if purchase.kind == LineKind.SESSION_FEE else "pack"
    return f"{prefix}:{purchase.id}"


def payment_reference(payment: CreditPayment) -> str:
    """The `invoice_items` reference that marks a credit payment billed."""
    return f"payment:{payment.id}"


_BOUGHT = {
    "credit_pack": "Credit pack",
    "auto_top_up": "Auto top-up",
    "session_pack": "Credits for a session pack",
    "credits": "Credits",
}
"""A payment's kind -> the start of its line's description."""


def payment_lines(payments: Iterable[CreditPayment]) -> list[Line]:
    """One `credit_purchase` line per payment, in order, then `payment_applied` taking their
    sum off again (none when there is no payment)."""
    lines = [
        Line(
            LineKind.CREDIT_PURCHASE,
            _BOUGHT.get(p.kind, "Credits") + (f": {p.item}" if p.item else ""),
            1,
            p.amount_micros,
        )
        for p in payments
    ]
    paid = sum(line.amount_micros for line in lines)
    if paid:
        lines.append(Line(LineKind.PAYMENT_APPLIED, "Paid when bought", 1, -paid))
    return lines


def charge_lines(charges: Iterable[Charge]) -> list[Line]:
    """One line per charge, of the charge's kind (`subscription_fee`, `proration_credit`,
    `proration_charge`), for the time it covers."""
    return [
        Line(LineKind(c.kind), c.description, 1, c.amount_micros, c.period_start, c.period_end)
        for c in charges
    ]


def purchase_lines(purchases: Iterable[Purchase]) -> list[Line]:
    """One line per kind, product, pack size and price, in the order first bought; its
    quantity counts the purchases."""
    counts: dict[tuple[str, str, int, int], int] = {}
    for p in purchases:
        group = (p.kind, p.product, p.sessions, p.amount_micros)
        counts[group] = counts.get(group, 0) + 1
    lines = []
    for (kind, product, sessions, unit), quantity in counts.items():
        if kind == LineKind.SESSION_FEE:
            description = f"Session: {product}"
        else:
            description = f"Session pack: {product}, {sessions} sessions"
        lines.append(Line(LineKind(kind), description, quantity, unit))
    return lines


def credits_applied(lines: Sequence[Line]) -> Line | None:
    """Minus the sum of the wallet purchases' lines; None when there are none."""
    paid = sum(line.amount_micros for line in lines)
    return Line(LineKind.CREDITS_APPLIED, "Paid from credits", 1, -paid) if paid else None


def tax_line(lines: Sequence[Line], *, country: str | None, rate: Decimal | None) -> Line | None:
    """The tax on the sum of `lines`, or None (no country, no rate, or a zero tax)."""
    if country is None or rate is None:
        return None
    amount = tax_micros(sum(line.amount_micros for line in lines), rate)
    if amount == 0:
        return None
    percent = f"{(rate * 100).normalize():f}"
    return Line(LineKind.TAX, f"Tax {country} {percent}%", 1, amount)


def invoice_lines(
    charges: Sequence[Charge],
    purchases: Sequence[Purchase],
    payments: Sequence[CreditPayment] = (),
    *,
    country: str | None,
    rate: Decimal | None,
) -> list[Line]:
    """Every line of an invoice billing `charges`, `purchases` and `payments`, in document
    order."""
    lines = charge_lines(charges)
    bought = purchase_lines(purchases)
    applied = credits_applied(bought)
    lines += bought + ([applied] if applied else []) + payment_lines(payments)
    tax = tax_line(lines, country=country, rate=rate)
    return lines + ([tax] if tax else [])
