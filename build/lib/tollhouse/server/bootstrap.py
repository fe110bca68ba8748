"""What `tollhouse serve` does before serving: bring the schema up to date, record its catalog
as the catalog in force, and make sure an operator key exists."""

from __future__ import annotations

from sqlalchemy import text

from tollhouse.catalog import Catalog, load_catalog
from tollhouse.catalog import service as catalogs
from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.config import Settings
from tollhouse.keys import service as keys
from tollhouse.storage import Database
from tollhouse.storage.migrate import upgrade_async
from tollhouse.subscriptions import service as subscriptions

BOOTSTRAP_LOCK_ID = 0x7011_4005
"""PostgreSQL advisory lock held while recording the catalog and creating the operator key."""


async def bootstrap(
    settings: Settings, *, catalog: Catalog | None = None, clock: Clock = SYSTEM_CLOCK
) -> str | None:
    """Migrate, record `catalog` (default: the one `settings` name) as the catalog in force,
    then create the operator key if there is none; all in one transaction after the
    migration.

    Returns the new operator key's secret (to print once), or None when one already
    existed. `TOLLHOUSE_BOOTSTRAP_KEY`, when set, is installed instead of a random key
    (it must be a well-formed `th_<env>_...` key).

    Raises:
        CatalogInvalid: the catalog `settings` name does not load.
        PlansInUseMissing: the catalog lacks a plan some customer or subscription is on (or
            scheduled for); nothing is recorded or created.
        MalformedKey: the bootstrap key is not a valid tollhouse key.
    """
    catalog = catalog or load_catalog(settings.catalog)
    await upgrade_async(settings.database_url)
    db = Database(settings.database_url)
    try:
        async with db.transaction() as session:
            if not db.is_sqlite:
                # Processes starting together: one records and creates, the others then see it.
                await session.execute(
                    text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": BOOTSTRAP_LOCK_ID}
                )
            in_use = await subscriptions.plans_in_use(session)
            await catalogs.record_served(session, catalog, plans_in_use=in_use, clock=clock)
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
