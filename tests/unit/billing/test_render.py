"""Documents as HTML and PDF from one template: what they print, escaped, and a PDF that
opens with its number and total in its text."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pypdf

from tollhouse.billing import InvoiceView, LineView, render_html, render_pdf

ISSUED = datetime(2026, 4, 15, tzinfo=UTC)


def invoice(name: str = "Ada Lovelace", **changes: object) -> InvoiceView:
    fields: dict[str, object] = {
        "id": "in_1",
        "kind": "invoice",
        "number": "TH-000042",
        "customer_id": "cus_1",
        "status": "open",
        "currency": "usd",
        "period_start": datetime(2026, 3, 15, tzinfo=UTC),
        "period_end": ISSUED,
        "subtotal_micros": 29_000_000,
        "tax_micros": 5_510_000,
        "total_micros": 34_510_000,
        "tax_country": "DE",
        "tax_rate": "0.19",
        "customer_name": name,
        "customer_email": "ada@example.com",
        "credited_invoice_id": None,
        "payment_reference": None,
        "created_at": ISSUED,
        "finalized_at": ISSUED,
        "paid_at": None,
        "voided_at": None,
        "marked_uncollectible_at": None,
        "lines": (
            LineView(
                "subscription_fee",
                "pro 2026-04-15 - 2026-05-15",
                1,
                29_000_000,
                29_000_000,
                ISSUED,
                datetime(2026, 5, 15, tzinfo=UTC),
            ),
            LineView("tax", "Tax DE 19%", 1, 5_510_000, 5_510_000, None, None),
        ),
    }
    fields.update(changes)
    return InvoiceView(**fields)  # type: ignore[arg-type]


def test_the_page_shows_the_number_lines_and_totals() -> None:
    page = render_html(invoice(), issuer="Tollhouse Test GmbH\nBerlin")

    for shown in ("TH-000042", "Tax DE 19%", "29.00 USD", "5.51 USD", "34.51 USD", "Berlin"):
        assert shown in page
    assert "2026-03-15 00:00 UTC" in page


def test_customer_text_is_escaped() -> None:
    page = render_html(invoice(name="<script>alert(1)</script>"))

    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_credit_note_is_titled_as_one() -> None:
    page = render_html(invoice(kind="credit_note", number="CN-000001", credited_invoice_id="in_9"))

    assert "Credit note CN-000001" in page and "in_9" in page


async def test_the_pdf_opens_and_its_text_has_the_number_and_total() -> None:
    pdf = await render_pdf(invoice(), issuer="Tollhouse Test GmbH")

    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = "".join(page.extract_text() for page in reader.pages)
    assert pdf.startswith(b"%PDF-")
    assert "TH-000042" in text and "34.51 USD" in text
