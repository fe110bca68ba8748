"""Entry point of the `tollhouse` command."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import typer

from tollhouse.catalog import PRESETS, preset_text
from tollhouse.cli.admin import catalog_app, credits_app, customers_app, keys_app, usage
from tollhouse.cli.alerts import alerts_app
from tollhouse.cli.common import console, errors, settings_or_exit
from tollhouse.cli.doctor import doctor
from tollhouse.cli.events import events_app
from tollhouse.cli.invoices import invoices_app, refunds_app
from tollhouse.cli.payments import packs_app, payments_app
from tollhouse.cli.serve import on_database, serve
from tollhouse.cli.sessions import sessions_app
from tollhouse.cli.subscriptions import plans_app, subscriptions_app
from tollhouse.cli.users import users_app
from tollhouse.cli.webhooks import webhooks_app
from tollhouse.config import CATALOG_FILE
from tollhouse.storage.migrate import upgrade

app = typer.Typer(
    name="tollhouse",
    help="Keys, rate limits, credits and usage in front of AI models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(customers_app, name="customers")
app.add_typer(keys_app, name="keys")
credits_app.add_typer(alerts_app, name="alerts")
app.add_typer(credits_app, name="credits")
app.add_typer(catalog_app, name="catalog")
app.add_typer(plans_app, name="plans")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(sessions_app, name="sessions")
app.add_typer(events_app, name="events")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(invoices_app, name="invoices")
app.add_typer(refunds_app, name="refunds")
app.add_typer(packs_app, name="packs")
app.add_typer(payments_app, name="payments")
app.add_typer(users_app, name="users")
app.command("usage")(usage)
app.command()(serve)
app.command()(doctor)


@app.command()
def init(
    path: Path = typer.Option(CATALOG_FILE, help="Where to write the catalog."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
    preset: str = typer.Option(
        "llm-api", help=f"The product shape to start from: {', '.join(PRESETS)}."
    ),
) -> None:
    """Write a commented catalog to edit (plans, prices, quotas, models, session products,
    resource tiers, credit packs) for a common product shape: `llm-api` (an LLM gateway),
    `image-api` (images and LoRA training jobs), `analysis-sessions` (an API sold by the $1
    session), `compute` (workspaces by the hour), `jobs` (a job queue charged per job)."""
    if preset not in PRESETS:
        errors.print(f"[red]error[/red]: no preset '{preset}': choose one of {', '.join(PRESETS)}")
        raise typer.Exit(2)
    if path.exists() and not force:
        errors.print(f"[red]error[/red]: {path} exists (use --force to overwrite)")
        raise typer.Exit(1)
    path.write_text(preset_text(preset))
    if path.resolve() == CATALOG_FILE.resolve():
        console.print(
            f"wrote {path}; `tollhouse serve` and the other commands run in this directory "
            "use it (TOLLHOUSE_CATALOG, when set, names another file)"
        )
    else:
        console.print(f"wrote {path}; use it with TOLLHOUSE_CATALOG={path}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to TOLLHOUSE_DATABASE_URL; a database that cannot be
    reached or used is one line on stderr and exit 2."""
    url = settings_or_exit().database_url
    on_database(url, partial(upgrade, url))
    console.print("database is up to date")


if __name__ == "__main__":
    app()
