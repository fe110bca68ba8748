"""`storage.driver.rows_statement`: many rows in ONE statement, on real SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tollhouse.storage.driver import rows_statement

INSERT = "INSERT INTO t (id, name, note) {rows}"
UPDATE = "UPDATE t SET name = v.column1 FROM ({rows}) AS v WHERE t.id = v.column2"


@pytest.fixture
def connection(tmp_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(tmp_path / "rows.db", isolation_level=None)
    connection.execute(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL, note TEXT, UNIQUE (name))"
    )
    return connection


@pytest.mark.parametrize("count", [1, 13, 300])
def test_every_row_is_inserted_with_its_types(connection: sqlite3.Connection, count: int) -> None:
    rows = [(n, f"row {n}", None if n % 2 else '{"a": 1}') for n in range(count)]

    statement = rows_statement(INSERT, rows)
    inserted = connection.execute(statement.sql, statement.params).rowcount

    assert (statement.rows, inserted) == (count, count)
    stored = connection.execute("SELECT id, name, note, typeof(id) FROM t ORDER BY id").fetchall()
    assert stored == [(*row, "integer") for row in rows]


def test_on_conflict_do_nothing_counts_only_new_rows(connection: sqlite3.Connection) -> None:
    connection.execute("INSERT INTO t VALUES (1, 'a', NULL)")

    statement = rows_statement(
        INSERT + " ON CONFLICT (name) DO NOTHING", [(2, "a", None), (3, "b", None)]
    )
    inserted = connection.execute(statement.sql, statement.params).rowcount

    assert inserted == 1
    assert connection.execute("SELECT id, name FROM t ORDER BY id").fetchall() == [
        (1, "a"),
        (3, "b"),
    ]


def test_an_update_joined_to_the_rows_counts_only_the_rows_it_matched(
    connection: sqlite3.Connection,
) -> None:
    connection.executemany("INSERT INTO t VALUES (?, ?, NULL)", [(1, "a"), (2, "b")])

    statement = rows_statement(UPDATE, [("x", 1), ("y", 3)])
    updated = connection.execute(statement.sql, statement.params).rowcount

    assert (statement.rows, updated) == (2, 1)
    assert connection.execute("SELECT name FROM t ORDER BY id").fetchall() == [("x",), ("b",)]


def test_no_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one row"):
        rows_statement(INSERT, [])
