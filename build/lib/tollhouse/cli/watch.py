"""`tollhouse sessions show --watch`: a session's cost, refreshed in place (rich `Live`) until
the session ends; and the `--duration` values the session verbs take."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import typer
from rich.live import Live
from rich.table import Table

from tollhouse.cli.common import Services, console
from tollhouse.money import format_micros
from tollhouse.sessions import SessionStatus, SessionView

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def parse_duration(text: str) -> int:
    """Seconds in `90`, `90s`, `30m`, `2h` or `1h30m` (hours, minutes, seconds, in order).

    Raises:
        typer.BadParameter: anything else, or 0 seconds.
    """
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groups()):
        raise typer.BadParameter(f"{text!r} is not a duration like 90, 90s, 30m, 2h or 1h30m")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total == 0:
        raise typer.BadParameter("the duration must be at least one second")
    return total


def _clock_time(span: timedelta) -> str:
    seconds = max(0, int(span.total_seconds()))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def render(view: SessionView, now: datetime) -> Table:
    """The session as a two-column table: what it runs on, for how long, what it costs."""
    table = Table(title=f"session {view.id}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    ran = (view.ended_at or now) - view.started_at
    rows = [
        ("status", view.status + (f" ({view.end_reason})" if view.end_reason else "")),
        ("customer", view.customer_id),
        ("runs on", view.resource_tier or view.product),
    ]
    if view.rate_micros_per_hour is not None:
        rows.append(("rate", f"{format_micros(view.rate_micros_per_hour, view.currency)} / h"))
    rows += [
        ("running for" if view.status == SessionStatus.ACTIVE else "ran for", _clock_time(ran)),
        ("cost", format_micros(view.cost_micros, view.currency)),
    ]
    if view.paid_until is not None and view.status == SessionStatus.ACTIVE:
        rows.append(("paid until", view.paid_until.isoformat(timespec="seconds")))
    if view.last_heartbeat_at is not None:
        rows.append(("last heartbeat", view.last_heartbeat_at.isoformat(timespec="seconds")))
    for name, value in rows:
        table.add_row(name, value)
    return table


async def watch(
    svc: Services,
    read: Callable[[Services], Awaitable[SessionView]],
    *,
    interval: float,
    live: bool = True,
) -> SessionView:
    """Read the session every `interval` seconds until it has ended, showing each reading in
    place when `live` (else silently, for `--json`); returns its last view."""
    view = await read(svc)
    shown = Live(render(view, svc.clock.now()), console=console, auto_refresh=False)
    with shown if live else contextlib.nullcontext():
        while view.status == SessionStatus.ACTIVE:
            await asyncio.sleep(interval)
            view = await read(svc)
            shown.update(render(view, svc.clock.now()), refresh=live)
    return view
