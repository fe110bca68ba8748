"""Ground: the SQLAlchemy 2 (async) engine, the declarative `Base`, column types, migrations.

Invariants: every table is declared on `Base.metadata` and created only by Alembic migrations
(`tollhouse db upgrade`); every datetime column stores UTC and reads back UTC-aware.
"""

from tollhouse.storage.base import Base, UTCDateTime
from tollhouse.storage.engine import Database

__all__ = ["Base", "Database", "UTCDateTime"]
