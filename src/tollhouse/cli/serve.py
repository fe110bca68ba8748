"""`tollhouse serve`: check what can be checked, bind the port, then hand the socket to uvicorn.

Order: settings (a malformed URL), catalog, the port (bound and listening here, so a busy
port is found before anything else runs), the database (migrate, record the catalog in
force, operator key: `server.bootstrap`), warnings about upstream keys, then "listening" and
uvicorn, which serves the already bound socket (`fd=`, also with `--workers`; Nagle off, see
`listen`). With `--workers N` the processes share a Prometheus multi-process directory
(`observability.multiprocess`), made before uvicorn starts them. Log lines (`TOLLHOUSE_LOG_*`)
go through `observability.logs`, uvicorn's too (warnings and errors: the start-up lines it
would print at `info` are the "listening" line's).

Each start-up failure is one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import sqlite3
from collections.abc import Callable
from typing import NoReturn, TypeVar

import typer
from rich.markup import escape
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tollhouse.catalog import Catalog, CatalogInvalid, load_catalog
from tollhouse.cli.common import console, errors, settings_or_exit
from tollhouse.config import Settings
from tollhouse.errors import TollhouseError
from tollhouse.observability import logs, multiprocess
from tollhouse.server.bootstrap import bootstrap

T = TypeVar("T")

EXIT_CANNOT_START = 2
"""Exit code of every start-up failure."""
BACKLOG = 2048
"""Pending connections the listening socket queues (uvicorn's default)."""


def fail(message: str) -> NoReturn:
    """Print `error: message` as one line on stderr and exit 2."""
    one_line = " ".join(message.split())
    errors.print(f"[red]error[/red]: {escape(one_line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_CANNOT_START)


def serve(
    host: str | None = typer.Option(None, help="Default: TOLLHOUSE_HOST or 127.0.0.1."),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Default: TOLLHOUSE_PORT or 8080."
    ),
    workers: int = typer.Option(
        1, min=1, help="Processes (needs PostgreSQL, and Redis for shared limits)."
    ),
) -> None:
    """Migrate, record the catalog in force, create the operator key on first start (printed
    once), and serve HTTP."""
    import uvicorn

    settings = settings_or_exit()
    if workers > 1 and settings.database_url.startswith("sqlite"):
        fail("several workers need PostgreSQL (TOLLHOUSE_DATABASE_URL)")
    catalog = _catalog(settings)
    host = host or settings.host
    port = port or settings.port
    with listen(host, port) as sock:
        secret = _bootstrap(settings, catalog)
        if secret is not None:
            console.print("[bold]Operator key (shown once, store it now):[/bold]")
            console.print(secret, soft_wrap=True, highlight=False)
        for line in credential_warnings(catalog):
            errors.print(
                f"[yellow]warning[/yellow]: {escape(line)}", highlight=False, soft_wrap=True
            )
        console.print(f"tollhouse listening on http://{host}:{port} (API docs at /docs)")
        logs.configure(settings.log_format, settings.log_level)
        with multiprocess.directory(workers):
            uvicorn.run(
                "tollhouse.api.app:create_app",
                factory=True,
                fd=sock.fileno(),
                workers=workers,
                loop="uvloop",
                http="httptools",
                log_config=None,
                log_level="warning",
                access_log=False,
                timeout_keep_alive=settings.keep_alive_seconds,
                # uvicorn passes it to asyncio.timeout, which takes any number of seconds.
                timeout_graceful_shutdown=settings.drain_seconds,  # type: ignore[arg-type]
            )


def _catalog(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings.catalog)
    except CatalogInvalid as error:
        problems = "; ".join(f"{e['loc'] or '<file>'}: {e['msg']}" for e in error.errors)
        where = error.extra.get("source", settings.catalog)
        fail(
            f"invalid catalog {where} ({len(error.errors)} errors: {problems}); "
            f"`tollhouse catalog validate {where}` shows each with its line"
        )


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` and listening (`SO_REUSEADDR`, as uvicorn binds),
    with `TCP_NODELAY`, which the connections it accepts inherit (Linux, BSD).

    uvicorn serves a socket passed as `fd=` as a UNIX socket (it cannot tell the family), so
    its event loop does not turn Nagle's algorithm off on the connections it accepts, as it
    does for TCP: small answers then wait for the client's delayed ACK (up to 40 ms on Linux).

    Raises: `typer.Exit(2)` (`fail`) when the host is unknown or the port cannot be bound."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=BACKLOG)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except socket.gaierror as exc:
        fail(f"cannot listen on {host}:{port}: unknown host ({exc.strerror})")
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            fail(
                f"cannot listen on {host}:{port}: the port is already in use (another "
                "server has it; choose another with --port or TOLLHOUSE_PORT)"
            )
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")


def _bootstrap(settings: Settings, catalog: Catalog) -> str | None:
    """`server.bootstrap`, its failures as one line."""
    return on_database(
        settings.database_url, lambda: asyncio.run(bootstrap(settings, catalog=catalog))
    )


def on_database(url: str, work: Callable[[], T]) -> T:
    """`work()`, which uses the database at `url`; a database that cannot be reached or used
    (and a `TollhouseError`) is one line on stderr and exit 2 (`fail`)."""
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        _open_sqlite_file(url)
        return work()
    except TollhouseError as error:
        fail(f"{error.detail} ({error.code})")
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        fail(f"cannot use the database {shown}: {cause}")
    except (OSError, sqlite3.Error) as error:
        fail(f"cannot reach the database {shown}: {error}")


def _open_sqlite_file(url: str) -> None:
    """Open a SQLite database file once with the standard library (creating it, as the first
    connection would), so that a path that cannot be opened fails here, cleanly: aiosqlite's
    worker thread prints a traceback when its first connection fails in a loop that then
    closes (omnilib/aiosqlite#241)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        sqlite3.connect(parsed.database).close()


def credential_warnings(catalog: Catalog) -> list[str]:
    """One line per upstream whose `api_key_env` names an unset (or empty) variable."""
    lines = []
    for upstream in catalog.upstreams_without_key():
        models = [
            m.id
            for m in catalog.models.values()
            if any(entry.upstream == upstream.name for entry in m.upstreams)
        ]
        lines.append(
            f"upstream {upstream.name!r} takes its API key from {upstream.api_key_env}, which "
            f"is not set: its models ({len(models)}) will be called without a key"
        )
    return lines
