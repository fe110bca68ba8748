"""Public ids: shape, time order, uniqueness, every random symbol used, and no shared symbols
across a fork."""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import pytest

from tollhouse.ids import BASE62, ID_LENGTH, RANDOM_SYMBOLS, TIME_SYMBOLS, new_id, random_base62

ID_PATTERN = re.compile(rf"hold_[0-9A-Za-z]{{{ID_LENGTH}}}")


def test_ids_have_the_prefix_and_22_base62_symbols() -> None:
    assert all(ID_PATTERN.fullmatch(new_id("hold")) for _ in range(1_000))


def created_ms(public_id: str) -> int:
    """The Unix milliseconds an id's time symbols spell."""
    value = 0
    for symbol in public_id.split("_", 1)[1][:TIME_SYMBOLS]:
        value = value * 62 + BASE62.index(symbol)
    return value


def test_an_id_begins_with_its_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id("hold")
    after = time.time_ns() // 1_000_000

    assert before <= created_ms(made) <= after


def test_ids_made_later_sort_after_earlier_ones() -> None:
    ids = []
    for _ in range(5):
        ids.append(new_id("req"))
        time.sleep(0.002)

    assert sorted(ids) == ids
    assert len({created_ms(i) for i in ids}) == 5


def test_ids_are_unique_across_many_buffer_refills() -> None:
    ids = [new_id("x") for _ in range(50_000)]  # about 170 refills of the buffer

    assert len(set(ids)) == len(ids)


def test_every_random_symbol_is_used_about_equally() -> None:
    counts = Counter("".join(new_id("x")[-RANDOM_SYMBOLS:] for _ in range(20_000)))

    assert set(counts) == set(BASE62)
    expected = 20_000 * RANDOM_SYMBOLS / 62
    assert all(abs(n - expected) < expected * 0.1 for n in counts.values())


def test_random_base62_draws_the_length_asked() -> None:
    assert [len(random_base62(n)) for n in (1, 22, 300)] == [1, 22, 300]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_does_not_repeat_the_parents_ids() -> None:
    new_id("x")  # the buffer holds symbols the child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next id, leave at once
        os.write(write, new_id("x").encode())
        os._exit(0)
    os.close(write)
    try:
        child = os.read(read, 100).decode()
    finally:
        os.close(read)
        os.waitpid(pid, 0)

    assert len(child) == 2 + ID_LENGTH
    assert child != new_id("x")
