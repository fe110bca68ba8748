"""Liveness and readiness: what `/health` and `/ready` check.

`/health` checks nothing: the process answers, so it is alive. `/ready` runs `readiness`:

| check | ok when |
| --- | --- |
| `database` | `SELECT 1` answers within `DATABASE_TIMEOUT_SECONDS` |
| `migrations` | every migration this build ships is applied (`storage.migrate.schema_lag`) |
| `redis` | (only when `TOLLHOUSE_REDIS_URL` is set) PING answers within `REDIS_TIMEOUT_SECONDS` |

The database checks share one connection and one timeout; Redis is checked at the same time.
Nothing is cached but the migration graph, so a probe sees the state of the moment (a probe
costs two small queries and one PING).
"""

from __future__ import annotations

import asyncio

from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from tollhouse.server.runtime import Runtime
from tollhouse.storage.migrate import schema_lag

OK = "ok"
DATABASE_TIMEOUT_SECONDS = 2.0
REDIS_TIMEOUT_SECONDS = 1.0


async def readiness(runtime: Runtime) -> dict[str, str]:
    """Each check's name and `"ok"` or why it failed (see the module docstring)."""
    database, redis = await asyncio.gather(_database(runtime), _redis(runtime))
    return {**database, **redis}


async def _database(runtime: Runtime) -> dict[str, str]:
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
            async with runtime.db.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                try:
                    rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
                except SQLAlchemyError:
                    return {"database": OK, "migrations": "not migrated (no alembic_version)"}
                current = frozenset(str(row[0]) for row in rows)
    except TimeoutError:
        return _down("database", f"no answer within {DATABASE_TIMEOUT_SECONDS:g} s")
    except (SQLAlchemyError, OSError) as exc:
        return _down("database", f"unreachable: {type(exc).__name__}")
    return {"database": OK, "migrations": schema_lag(current) or OK}


def _down(check: str, reason: str) -> dict[str, str]:
    return {check: reason, "migrations": "unknown (no database)"}


async def _redis(runtime: Runtime) -> dict[str, str]:
    if not runtime.settings.redis_url:
        return {}
    try:
        async with asyncio.timeout(REDIS_TIMEOUT_SECONDS):
            await runtime.invalidations.ping()
    except TimeoutError:
        return {"redis": f"no answer within {REDIS_TIMEOUT_SECONDS:g} s"}
    except (RedisError, OSError) as exc:
        return {"redis": f"unreachable: {type(exc).__name__}"}
    return {"redis": OK}
