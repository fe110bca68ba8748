"""`storage.driver.rows_statements`: many rows in few multi-row statements, on real SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tollhouse.storage.driver import rows_statements

INSERT = "INSERT INTO t (id, name) VALUES {rows}"
UPDATE = "UPDATE t SET name = v.column1 FROM (VALUES {rows}) AS v WHERE t.id = v.column2"


@pytest.fixture
def connection(tmp_path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(tmp_path / "rows.db", isolation_level=None)
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    return connection


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(1, [1]), (13, [8, 4, 1]), (256, [256]), (300, [256, 32, 8, 4]), (0, [])],
)
def test_rows_are_cut_into_power_of_two_statements_that_insert_them_all(
    connection: sqlite3.Connection, count: int, sizes: list[int]
) -> None:
    rows = [(n, f"row {n}") for n in range(count)]

    statements = rows_statements(INSERT, rows)
    inserted = sum(connection.execute(s.sql, s.params).rowcount for s in statements)

    assert [s.rows for s in statements] == sizes
    assert inserted == count
    assert connection.execute("SELECT id, name FROM t ORDER BY id").fetchall() == rows


def test_an_update_joined_to_a_values_list_counts_only_the_rows_it_matched(
    connection: sqlite3.Connection,
) -> None:
    connection.executemany("INSERT INTO t VALUES (?, ?)", [(1, "a"), (2, "b")])

    (statement,) = rows_statements(UPDATE, [("x", 1), ("y", 3)])
    updated = connection.execute(statement.sql, statement.params).rowcount

    assert (statement.rows, updated) == (2, 1)
    assert connection.execute("SELECT name FROM t ORDER BY id").fetchall() == [("x",), ("b",)]
