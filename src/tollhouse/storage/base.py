"""Declarative base with a constraint naming convention (so migrations are stable) and types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, DateTime, MetaData, func, literal_column, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back UTC-aware (SQLite keeps no zone).

    Raises `ValueError` when handed a naive datetime: every time in tollhouse is aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("UTCDateTime needs a timezone-aware datetime")
        moment: datetime = value.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every ORM model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


_SQLITE_WINDOW_PREFIXES = {
    "hour": (13, ":00:00"),
    "day": (10, " 00:00:00"),
    "month": (7, "-01 00:00:00"),
}
"""Per window: how many leading characters of SQLite's stored UTC text
('YYYY-MM-DD HH:MM:SS.ffffff') name it, and what completes them into its start."""


def utc_window_start(
    column: ColumnElement[datetime] | InstrumentedAttribute[datetime], window: str, dialect: str
) -> ColumnElement[datetime]:
    """SQL for the UTC start of the `window` (`hour`, `day` or `month`) that `column` (a
    `UTCDateTime`) falls in, read back as an aware datetime: group by it to count per window.

    Constants are inlined (not bound) so that the SELECT and GROUP BY expressions match.
    """
    expr: ColumnElement[Any]
    if dialect == "postgresql":
        naive_utc = func.timezone(literal_column("'UTC'"), column)
        expr = func.date_trunc(literal_column(f"'{window}'"), naive_utc)
    else:  # a prefix of the stored text: cheaper per row than strftime
        length, rest = _SQLITE_WINDOW_PREFIXES[window]
        expr = func.substr(column, literal_column("1"), literal_column(str(length))).concat(
            literal_column(f"'{rest}'")
        )
    return type_coerce(expr, UTCDateTime())
