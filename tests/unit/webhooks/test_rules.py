"""Webhook rules without a database: event type filters, URL checks, the retry schedule."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tollhouse.errors import InvalidInput
from tollhouse.webhooks import filters, schedule

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
DAY_SECONDS = 24 * 3600


class TestEventTypeFilters:
    @pytest.mark.parametrize(
        ("filter_", "taken", "not_taken"),
        [
            ("*", ["session.started", "credits.low", "invoice.finalized"], []),
            ("session.*", ["session.started", "session.ended"], ["credits.low", "sessions.x"]),
            ("credits.low", ["credits.low"], ["credits.depleted", "credits.lower"]),
        ],
    )
    def test_a_filter_takes_its_types_only(
        self, filter_: str, taken: list[str], not_taken: list[str]
    ) -> None:
        assert all(filters.matches([filter_], t) for t in taken)
        assert not any(filters.matches([filter_], t) for t in not_taken)

    def test_an_event_is_taken_by_any_of_the_filters(self) -> None:
        chosen = ["credits.low", "payment.*"]
        assert filters.matches(chosen, "payment.failed")
        assert filters.matches(chosen, "credits.low")
        assert not filters.matches(chosen, "credits.depleted")

    def test_duplicates_are_dropped_in_order(self) -> None:
        kept = filters.check_event_types(["session.*", "credits.low", "session.*"])
        assert kept == ["session.*", "credits.low"]

    @pytest.mark.parametrize(
        "bad",
        [[], ["session"], ["Session.*"], ["*.ended"], ["session.**"], ["a." + "b" * 63], [""]],
    )
    def test_malformed_filters_are_refused(self, bad: list[str]) -> None:
        with pytest.raises(InvalidInput) as raised:
            filters.check_event_types(bad)
        assert raised.value.extra["errors"][0]["loc"] == "event_types"

    def test_more_than_the_most_filters_are_refused(self) -> None:
        many = [f"domain.verb{n}" for n in range(filters.MAX_FILTERS + 1)]
        with pytest.raises(InvalidInput):
            filters.check_event_types(many)


class TestUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "https://app.example.com/hooks",
            "http://127.0.0.1:8000/hooks?x=1",
            "http://[::1]:9000/",
            "https://user:pass@hooks.example.org",
            "https://bücher.example/hook",
            "http://localhost",
        ],
    )
    def test_http_and_https_urls_with_a_host_are_accepted(self, url: str) -> None:
        assert filters.check_url(url) == url

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://example.com/x",
            "example.com/hooks",
            "https://",
            "http://:80/x",
            "https://exa mple.com",
            "https://example.com/\nx",
            "https://example.com:99999/",
            "https://example.com:port/",
            "https://example.com/#frag",
            "https://[::1/",
            "https://-bad-.example/",
            "https://example.com/" + "x" * filters.MAX_URL_LENGTH,
        ],
    )
    def test_other_urls_are_refused(self, url: str) -> None:
        with pytest.raises(InvalidInput) as raised:
            filters.check_url(url)
        assert raised.value.extra["errors"][0]["loc"] == "url"


class TestSchedule:
    def test_each_delay_is_the_spec_delay_stretched_by_at_most_the_jitter(self) -> None:
        rng = random.Random(7)
        for failed, delay in enumerate(schedule.RETRY_DELAYS_SECONDS, start=1):
            for _ in range(50):
                due = schedule.next_attempt_at(failed, NOW, rng)
                assert due is not None
                waited = (due - NOW).total_seconds()
                assert delay <= waited < delay * (1 + schedule.JITTER)

    def test_jitter_spreads_deliveries_that_failed_together(self) -> None:
        rng = random.Random(1)
        dues = {schedule.next_attempt_at(3, NOW, rng) for _ in range(20)}
        assert len(dues) == 20

    def test_eight_attempts_span_at_least_a_day(self) -> None:
        """The least jitter (a factor of 1) still spans 27 h 35 min 5 s."""

        class NoJitter(random.Random):
            def random(self) -> float:
                return 0.0

        moment = NOW
        for failed in range(1, schedule.MAX_ATTEMPTS):
            due = schedule.next_attempt_at(failed, moment, NoJitter())
            assert due is not None
            moment = due
        assert schedule.MAX_ATTEMPTS == 8
        assert moment - NOW == timedelta(hours=27, minutes=35, seconds=5)
        assert (moment - NOW).total_seconds() >= DAY_SECONDS

    def test_no_attempt_after_the_last(self) -> None:
        assert schedule.next_attempt_at(schedule.MAX_ATTEMPTS, NOW, random.Random()) is None

    def test_an_endpoint_failing_five_days_is_past_the_cutoff(self) -> None:
        assert schedule.disable_cutoff(NOW) == NOW - timedelta(days=5)
