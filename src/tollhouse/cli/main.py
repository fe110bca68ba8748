"""Entry point of the `tollhouse` command."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from tollhouse.catalog import starter_catalog_text
from tollhouse.cli.admin import catalog_app, credits_app, customers_app, keys_app, usage
from tollhouse.cli.common import console, errors, print_error
from tollhouse.cli.subscriptions import plans_app, subscriptions_app
from tollhouse.config import get_settings
from tollhouse.errors import TollhouseError
from tollhouse.server.bootstrap import bootstrap
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
app.add_typer(credits_app, name="credits")
app.add_typer(catalog_app, name="catalog")
app.add_typer(plans_app, name="plans")
app.add_typer(subscriptions_app, name="subscriptions")
app.command("usage")(usage)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Default: TOLLHOUSE_HOST or 127.0.0.1."),
    port: int | None = typer.Option(None, help="Default: TOLLHOUSE_PORT or 8080."),
    workers: int = typer.Option(
        1, min=1, help="Processes (needs PostgreSQL, and Redis for shared limits)."
    ),
) -> None:
    """Migrate, create the operator key on first start (printed once), and serve HTTP."""
    import uvicorn

    settings = get_settings()
    if workers > 1 and settings.database_url.startswith("sqlite"):
        errors.print("[red]error[/red]: several workers need PostgreSQL (TOLLHOUSE_DATABASE_URL)")
        raise typer.Exit(2)
    try:
        secret = asyncio.run(bootstrap(settings))
    except TollhouseError as error:
        print_error(f"error ({error.code})", error)
        raise typer.Exit(1) from None
    if secret is not None:
        console.print("[bold]Operator key (shown once, store it now):[/bold]")
        console.print(secret, soft_wrap=True, highlight=False)
    host = host or settings.host
    port = port or settings.port
    console.print(f"tollhouse listening on http://{host}:{port} (API docs at /docs)")
    uvicorn.run(
        "tollhouse.api.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


@app.command()
def init(
    path: Path = typer.Option(Path("tollhouse.yaml"), help="Where to write the catalog."),
    force: bool = typer.Option(False, help="Overwrite an existing file."),
) -> None:
    """Write a starter catalog (plans, categories, models, prices) to edit."""
    if path.exists() and not force:
        errors.print(f"[red]error[/red]: {path} exists (use --force to overwrite)")
        raise typer.Exit(1)
    path.write_text(starter_catalog_text())
    console.print(f"wrote {path}; use it with TOLLHOUSE_CATALOG={path}")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to TOLLHOUSE_DATABASE_URL."""
    upgrade(get_settings().database_url)
    console.print("database is up to date")


if __name__ == "__main__":
    app()
