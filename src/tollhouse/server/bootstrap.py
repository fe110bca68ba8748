"""First start: bring the schema up to date and make sure an operator key exists."""

from __future__ import annotations

from sqlalchemy import text

from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.config import Settings
from tollhouse.keys import service as keys
from tollhouse.storage import Database
from tollhouse.storage.migrate import upgrade_async

BOOTSTRAP_LOCK_ID = 0x7011_4005
"""PostgreSQL advisory lock held while checking for and creating the operator key."""


async def bootstrap(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> str | None:
    """Migrate, then create the operator key if there is none.

    Returns the new operator key's secret (to print once), or None when one already
    existed. `TOLLHOUSE_BOOTSTRAP_KEY`, when set, is installed instead of a random key
    (it must be a well-formed `th_<env>_...` key).

    Raises:
        MalformedKey: the bootstrap key is not a valid tollhouse key.
    """
    await upgrade_async(settings.database_url)
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            if not db.is_sqlite:
                # Processes starting together: one creates the key, the others then see it.
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": BOOTSTRAP_LOCK_ID}
                )
            if await keys.has_operator_key(session):
                return None
            raw = settings.bootstrap_key.get_secret_value() if settings.bootstrap_key else None
            issued = await keys.create_key(
                session,
                customer_id=None,
                name="operator",
                issuer=None,
                scopes=("read", "write", "admin"),
                env=settings.key_env,
                secret=settings.key_secret.get_secret_value().encode(),
                clock=clock,
                raw_key=raw,
            )
        return issued.secret
    finally:
        await db.dispose()
