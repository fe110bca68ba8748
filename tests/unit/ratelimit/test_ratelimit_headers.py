"""headers(), most_restrictive() and the error family."""

from __future__ import annotations

import pytest

from tollhouse.errors import InvalidInput, TollhouseError
from tollhouse.ratelimit import (
    Decision,
    RateLimitCostTooLarge,
    RateLimited,
    RateLimitError,
    RateLimitStorageError,
    WindowStats,
    headers,
    most_restrictive,
)

REQUESTS = WindowStats(limit=60, remaining=30, reset_after_seconds=30.0, retry_after_seconds=0.0)
TOKENS = WindowStats(
    limit=40_000, remaining=4_000, reset_after_seconds=54.0001, retry_after_seconds=0.0
)


class TestHeaders:
    def test_allowed_decision_reports_the_window_closest_to_its_limit(self) -> None:
        # requests: 50 % left, tokens: 10 % left
        assert headers([REQUESTS, TOKENS]) == {
            "RateLimit-Limit": "40000",
            "RateLimit-Remaining": "4000",
            "RateLimit-Reset": "55",
        }

    def test_denied_decision_adds_retry_after_rounded_up(self) -> None:
        denied = WindowStats(
            limit=60, remaining=0, reset_after_seconds=60.0, retry_after_seconds=0.2
        )

        assert headers([TOKENS, denied]) == {
            "RateLimit-Limit": "60",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "60",
            "Retry-After": "1",
        }

    def test_longest_retry_wins_among_denied_windows(self) -> None:
        short = WindowStats(
            limit=60, remaining=0, reset_after_seconds=60.0, retry_after_seconds=1.0
        )
        long = WindowStats(
            limit=40_000, remaining=100, reset_after_seconds=59.0, retry_after_seconds=12.5
        )

        result = headers([short, long])

        assert most_restrictive([short, long]) is long
        assert (result["RateLimit-Limit"], result["Retry-After"]) == ("40000", "13")

    def test_no_windows_no_headers(self) -> None:
        assert headers([]) == {}
        with pytest.raises(ValueError):
            most_restrictive([])

    def test_decision_headers_and_retry_after(self) -> None:
        denied = WindowStats(
            limit=10, remaining=0, reset_after_seconds=60.0, retry_after_seconds=6.0
        )
        decision = Decision(allowed=False, stats=[REQUESTS, denied])

        assert decision.retry_after_seconds == 6.0
        assert decision.headers()["Retry-After"] == "6"

    def test_allowed_decision_does_not_raise(self) -> None:
        Decision(allowed=True, stats=[REQUESTS]).raise_if_denied()

    def test_denied_decision_raises_with_integer_extras(self) -> None:
        denied = WindowStats(
            limit=10, remaining=0, reset_after_seconds=59.5, retry_after_seconds=0.4
        )

        with pytest.raises(RateLimited) as caught:
            Decision(allowed=False, stats=[denied]).raise_if_denied()

        assert caught.value.extra == {
            "retry_after_seconds": 1,
            "limit": 10,
            "remaining": 0,
            "reset_seconds": 60,
        }
        assert caught.value.to_problem()["type"].endswith("/rate-limited")


class TestErrors:
    @pytest.mark.parametrize(
        ("error", "status", "code"),
        [
            (RateLimited, 429, "rate-limited"),
            (RateLimitStorageError, 503, "rate-limit-unavailable"),
            (RateLimitCostTooLarge, 422, "rate-limit-cost-too-large"),
        ],
    )
    def test_status_and_code(self, error: type[TollhouseError], status: int, code: str) -> None:
        assert (error.status, error.code) == (status, code)
        assert issubclass(error, RateLimitError)

    def test_storage_outage_is_not_a_rate_limit_answer(self) -> None:
        assert not issubclass(RateLimitStorageError, RateLimited)

    def test_cost_too_large_is_invalid_input(self) -> None:
        assert issubclass(RateLimitCostTooLarge, InvalidInput)
