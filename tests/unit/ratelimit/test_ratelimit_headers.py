"""headers(), most_restrictive() and the error family."""

from __future__ import annotations

import pytest

from tollhouse.api.problems import problem_headers
from tollhouse.clock import FrozenClock
from tollhouse.errors import InvalidInput, TollhouseError
from tollhouse.ratelimit import (
    Decision,
    Limit,
    MemoryStorage,
    RateLimitCostTooLarge,
    RateLimited,
    RateLimiter,
    RateLimitError,
    RateLimitStorageError,
    WindowStats,
    headers,
    most_restrictive,
)

TEXT_RPM = Limit(60, 60.0, "text-rpm")
TEXT_TPM = Limit(40_000, 60.0, "text-tpm")
SLOW = Limit(10, 60.0, "slow")
"""One unit every 6 s: the effective window and the full reset differ visibly."""

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


class TestStructuredFields:
    """The IETF draft's `RateLimit-Policy` and `RateLimit` fields (draft-11 syntax)."""

    async def test_every_window_is_named_in_order_with_its_quota_and_window(
        self, clock: FrozenClock
    ) -> None:
        limiter = RateLimiter(MemoryStorage(clock=clock))

        decision = await limiter.hit_all([(TEXT_RPM, "c:rpm", 1), (TEXT_TPM, "c:tpm", 12)])

        fields = decision.headers()
        assert fields["RateLimit-Policy"] == '"text-rpm";q=60;w=60, "text-tpm";q=40000;w=60'
        # tokens: 12 taken of 40,000; the next one is freed 1.5 ms later, rounded up to 1 s
        assert fields["RateLimit"] == '"text-rpm";r=59;t=1, "text-tpm";r=39988;t=1'
        assert fields["RateLimit-Remaining"] == "59"

    async def test_effective_window_lasts_until_the_next_unit_is_freed(
        self, clock: FrozenClock
    ) -> None:
        limiter = RateLimiter(MemoryStorage(clock=clock))
        for _ in range(3):
            await limiter.hit(SLOW, "k")  # 18 s ahead: 7 left, the 8th in 6 s
        clock.advance(2.0)

        probe = await limiter.test(SLOW, "k")

        fields = headers([probe])
        assert fields["RateLimit"] == '"slow";r=7;t=4'
        assert fields["RateLimit-Reset"] == "16"  # the older field: until the window is full

    async def test_full_window_has_no_effective_window(self, clock: FrozenClock) -> None:
        limiter = RateLimiter(MemoryStorage(clock=clock))

        probe = await limiter.test(SLOW, "untouched")

        assert headers([probe])["RateLimit"] == '"slow";r=10;t=0'

    async def test_denial_caps_every_effective_window_at_retry_after(
        self, clock: FrozenClock
    ) -> None:
        limiter = RateLimiter(MemoryStorage(clock=clock))
        for _ in range(3):
            await limiter.hit(SLOW, "slow")  # its next unit in 6 s
        await limiter.hit(TEXT_RPM, "fast", cost=60)  # exhausted: next unit in 1 s

        denied = await limiter.hit_all([(SLOW, "slow", 1), (TEXT_RPM, "fast", 1)])

        fields = denied.headers()
        assert fields["Retry-After"] == "1"
        assert fields["RateLimit"] == '"slow";r=7;t=1, "text-rpm";r=0;t=1'

    async def test_rate_limited_error_carries_the_decisions_fields_to_the_answer(
        self, clock: FrozenClock
    ) -> None:
        limiter = RateLimiter(MemoryStorage(clock=clock))
        await limiter.hit(SLOW, "k", cost=10)
        denied = await limiter.hit_all([(SLOW, "k", 1)])

        with pytest.raises(RateLimited) as caught:
            denied.raise_if_denied()

        assert caught.value.headers == denied.headers()
        assert problem_headers(caught.value) == {
            "RateLimit-Limit": "10",
            "RateLimit-Remaining": "0",
            "RateLimit-Reset": "60",
            "RateLimit-Policy": '"slow";q=10;w=60',
            "RateLimit": '"slow";r=0;t=6',
            "Retry-After": "6",
        }
        assert "headers" not in caught.value.to_problem()

    def test_unnamed_limit_is_named_after_its_shape(self) -> None:
        assert Limit(60, 60.0).name == "60/60s"
        assert Limit.per_hour(5).policy_item == '"5/3600s";q=5;w=3600'

    def test_window_of_a_fraction_of_a_second_is_left_out(self) -> None:
        assert Limit(10, 0.5, "burst").policy_item == '"burst";q=10'

    def test_names_are_escaped_as_structured_field_strings(self) -> None:
        assert Limit(1, 60.0, 'say "hi" \\ bye').sf_name == '"say \\"hi\\" \\\\ bye"'

    @pytest.mark.parametrize("name", ["caf\u00e9", "tab\there", "new\nline"])
    def test_names_outside_printable_ascii_are_refused(self, name: str) -> None:
        with pytest.raises(ValueError, match="printable ASCII"):
            Limit(1, 60.0, name)

    def test_windows_built_by_hand_get_only_the_older_fields(self) -> None:
        assert set(headers([REQUESTS])) == {
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
        }
