"""Bring a database's schema up to date with Alembic (`tollhouse db upgrade`).

The migration scripts live in `storage/migrations/versions`; they run the same on SQLite
(batch mode for ALTERs) and PostgreSQL. `MODEL_MODULES` names the modules whose tables the
migrations cover; Alembic's autogenerate and the schema-drift test import them.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from functools import cache, lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

MODEL_MODULES = (
    "tollhouse.alerts.models",
    "tollhouse.billing.models",
    "tollhouse.catalog.models",
    "tollhouse.customers.models",
    "tollhouse.events.models",
    "tollhouse.keys.models",
    "tollhouse.ledger.models",
    "tollhouse.metering.models",
    "tollhouse.payments.models",
    "tollhouse.server.models",
    "tollhouse.sessions.models",
    "tollhouse.subscriptions.models",
    "tollhouse.users.models",
    "tollhouse.webhooks.models",
)


def load_models() -> None:
    """Import every model module so `Base.metadata` knows all tables."""
    for name in MODEL_MODULES:
        importlib.import_module(name)


def alembic_config(url: str) -> Config:
    """An Alembic config for `url` that uses the packaged migration scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = url
    return config


_ALEMBIC = threading.Lock()
"""Alembic keeps its migration context in a module global: one upgrade at a time per process."""


def upgrade(url: str, revision: str = "heads") -> None:
    """Apply migrations up to `revision`. Synchronous: call from outside an event loop.

    Serialised within the process (Alembic's context is global); several processes may
    upgrade one database at once on PostgreSQL (DDL runs in one transaction each).
    """
    with _ALEMBIC:
        command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "heads") -> None:
    """`upgrade` from inside a running event loop (runs Alembic in a worker thread)."""
    await asyncio.to_thread(upgrade, url, revision)


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(""))


@lru_cache(maxsize=8)
def schema_lag(current: frozenset[str]) -> str | None:
    """Why a database whose `alembic_version` holds `current` is not at this build's heads, or
    None when it is: every packaged revision is `current` or below one of them (a revision
    that another depends on is not listed in `alembic_version` itself)."""
    scripts = _scripts()
    known = {script.revision for script in scripts.walk_revisions()}
    unknown = current - known
    if unknown:
        return f"at {', '.join(sorted(unknown))}, unknown to this build (a newer one migrated it)"
    applied: set[str] = set()
    for revision in current:
        applied.update(script.revision for script in scripts.iterate_revisions(revision, "base"))
    missing = known - applied
    if not missing:
        return None
    return f"lacks {', '.join(sorted(missing))} (run `tollhouse db upgrade`)"
