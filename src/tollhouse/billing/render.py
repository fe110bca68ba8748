"""Documents as an HTML page and as a PDF, both from one Jinja2 template
(`billing/templates/invoice.html`); the PDF is that HTML laid out by WeasyPrint.

WeasyPrint needs Pango (`libpango-1.0-0`, `libpangoft2-1.0-0`) and is imported on the first
PDF, not before. A PDF takes tens of milliseconds of CPU: `render_pdf` lays it out in a
worker thread, one at a time per process (WeasyPrint does not promise thread safety), so
the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from tollhouse.billing.schemas import InvoiceView
from tollhouse.money import format_amount

_PDF_LOCK = threading.Lock()
PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"
"""The Content-Security-Policy to serve `render_html`'s page with: its own inline styles,
nothing else (no script runs, whatever a customer's name holds; it is escaped too), and no
other site may frame it."""


def _moment(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("tollhouse.billing", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["moment"] = _moment
    return env


def render_html(invoice: InvoiceView, *, issuer: str = "") -> str:
    """The document as a standalone HTML page (styles inline, nothing fetched)."""
    template = _environment().get_template("invoice.html")
    return template.render(
        invoice=invoice,
        issuer=issuer,
        money=lambda micros: format_amount(micros, invoice.currency),
        title="Credit note" if invoice.kind == "credit_note" else "Invoice",
    )


def _pdf(html: str) -> bytes:
    import weasyprint  # heavy, and needs Pango: loaded on the first PDF only

    with _PDF_LOCK:
        document: bytes = weasyprint.HTML(string=html).write_pdf()
    return document


async def render_pdf(invoice: InvoiceView, *, issuer: str = "") -> bytes:
    """The document as a PDF (A4), laid out from `render_html`'s page in a worker thread."""
    return await asyncio.to_thread(_pdf, render_html(invoice, issuer=issuer))
