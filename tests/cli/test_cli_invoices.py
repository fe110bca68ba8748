"""`tollhouse invoices ...` and `tollhouse refunds create`, on a SQLite file."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest
from tests.support.catalog import SESSION_PRICE_MICROS
from tests.support.cli import Cli

PRO_WITH_TAX_MICROS = 34_510_000
"""The test catalog's pro plan, $29.00, and 19 % German tax."""


@pytest.fixture
def taxed(migrated: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("TOLLHOUSE_TAX_RATES", '{"DE": "0.19"}')
    return migrated


def test_close_list_show_render_and_pay(taxed: Cli, tmp_path: Path) -> None:
    customer = taxed.json(
        "customers", "create", "--name", "Ada", "--plan", "pro", "--country", "DE"
    )
    assert customer["country"] == "DE"

    closed = taxed.json("invoices", "close")
    (listed,) = taxed.json("invoices", "list", "--customer", customer["id"])
    shown = taxed.json("invoices", "show", listed["id"])
    table = taxed.ok("invoices", "show", listed["id"]).stdout
    written = taxed.ok("invoices", "pdf", listed["id"], "--output", str(tmp_path / "i.pdf"))
    page = taxed.ok("invoices", "html", listed["id"]).stdout
    paid = taxed.json("invoices", "pay", listed["id"], "--reference", "wire-7")
    refused = taxed.invoke("invoices", "void", listed["id"])

    assert closed["invoices_finalized"] == ["TH-000001"]
    assert (shown["number"], shown["total_micros"]) == ("TH-000001", PRO_WITH_TAX_MICROS)
    assert [line["kind"] for line in shown["lines"]] == ["subscription_fee", "tax"]
    assert "Tax DE 19%" in table
    assert "i.pdf" in written.stdout
    reader = pypdf.PdfReader(io.BytesIO((tmp_path / "i.pdf").read_bytes()))
    text = "".join(p.extract_text() for p in reader.pages)
    assert "TH-000001" in text and "34.51 USD" in text
    assert "TH-000001" in page and page.lstrip().startswith("<!DOCTYPE html>")
    assert (paid["status"], paid["payment_reference"]) == ("paid", "wire-7")
    assert refused.exit_code == 1 and "invalid-invoice-transition" in refused.stderr


def test_a_refund_from_the_cli_is_a_credit_note(taxed: Cli) -> None:
    customer = taxed.customer()
    taxed.json("credits", "grant", customer, "5.00")
    session = taxed.json("sessions", "start", customer, "analysis")

    refund = taxed.json("refunds", "create", session["hold_id"], "--reason", "outage")
    notes = taxed.json("invoices", "list", "--kind", "credit_note")
    missing = taxed.invoke("invoices", "show", "in_nope")
    country = taxed.json("customers", "update", customer, "--country", "FR")

    assert (refund["amount_micros"], refund["status"]) == (SESSION_PRICE_MICROS, "succeeded")
    assert refund["credit_note_number"] == "CN-000001"
    assert [n["number"] for n in notes] == ["CN-000001"]
    assert taxed.json("credits", "balance", customer)["available_micros"] == 5_000_000
    assert missing.exit_code == 1 and "invoice-not-found" in missing.stderr
    assert country["country"] == "FR"
