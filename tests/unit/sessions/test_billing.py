"""The metered billing rule, with hand-computed micros: ceil(ceil(seconds) * rate / 3600)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from tollhouse.sessions.billing import (
    allocate,
    billed_seconds,
    cost_micros,
    run_cost,
    slice_micros,
)

START = datetime(2026, 3, 15, 12, 0, 0, 250_000, tzinfo=UTC)


class TestCost:
    @pytest.mark.parametrize(
        ("seconds", "rate_micros_per_hour", "micros"),
        [
            (1800, 75_000, 37_500),  # 0.5 h at $0.075/h, exact
            (3600, 50_000, 50_000),  # 1 h at $0.05/h
            (1, 75_000, 21),  # 20.833... up
            (90, 10_000, 250),  # 90 s at $0.01/h, exact
            (7, 600_000, 1_167),  # 1,166.67 up
            (4000, 1_000_000, 1_111_112),  # 1,111,111.1 up
            (86_400, 2_400_000, 57_600_000),  # a day at $2.40/h
            (5000, 0, 0),  # free
            (0, 75_000, 0),
        ],
    )
    def test_the_cost_is_rounded_up_once_to_a_micro(
        self, seconds: int, rate_micros_per_hour: int, micros: int
    ) -> None:
        assert cost_micros(seconds, rate_micros_per_hour) == micros

    def test_negative_inputs_raise(self) -> None:
        with pytest.raises(ValueError):
            cost_micros(-1, 75_000)
        with pytest.raises(ValueError):
            cost_micros(1, -1)


class TestBilledSeconds:
    @pytest.mark.parametrize(
        ("elapsed", "seconds"),
        [
            (timedelta(seconds=1800), 1800),
            (timedelta(seconds=1800, microseconds=1), 1801),
            (timedelta(seconds=3599, microseconds=200_000), 3600),
            (timedelta(microseconds=1), 1),
            (timedelta(0), 0),
            (-timedelta(seconds=3), 0),
        ],
    )
    def test_a_started_second_counts_whole(self, elapsed: timedelta, seconds: int) -> None:
        assert billed_seconds(START, START + elapsed) == seconds

    def test_the_run_cost_rounds_the_whole_run_once(self) -> None:
        # 2,700.5 s -> 2,701 s; 2,701 * 50,000 / 3,600 = 37,513.89 -> 37,514
        assert run_cost(START, START + timedelta(seconds=2700.5), 50_000) == 37_514
        # per-second rounding would give 2,701 * ceil(13.89) = 37,814: one rounding, not many
        assert 2701 * cost_micros(1, 50_000) == 37_814


class TestSlices:
    def test_consecutive_slices_add_up_to_the_cost_of_their_span(self) -> None:
        rate = 70_000  # 19.44... micros a second: every slice boundary rounds
        bounds = [0, 900, 1200, 1500, 1537, 1800, 2100]
        amounts = [slice_micros(a, b, rate) for a, b in itertools.pairwise(bounds)]
        assert amounts == [17_500, 5_834, 5_833, 720, 5_113, 5_834]
        assert sum(amounts) == cost_micros(2100, rate) == 40_834

    def test_a_slice_ending_before_it_starts_raises(self) -> None:
        with pytest.raises(ValueError):
            slice_micros(10, 9, 1)


class TestAllocate:
    def test_the_earliest_holds_are_filled_first(self) -> None:
        assert allocate(20_000, [17_500, 5_834, 5_833]) == [17_500, 2_500, 0]
        assert allocate(29_167, [17_500, 5_834, 5_833]) == [17_500, 5_834, 5_833]
        assert allocate(0, [17_500, 0]) == [0, 0]

    def test_more_than_the_holds_raises(self) -> None:
        with pytest.raises(ValueError):
            allocate(3, [1, 1])
        with pytest.raises(ValueError):
            allocate(-1, [1])
