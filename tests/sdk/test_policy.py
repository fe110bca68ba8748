"""The shared base's rules, on answers a live server does not give on demand (through
`httpx.MockTransport`): how long a retry waits, when it gives up, what an answer that is not
problem+json becomes, where the URL and key come from."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from tollhouse import APIStatusError, Client, InternalServerError, RateLimitError
from tollhouse.sdk import _base

HEALTHY = {"status": "ok"}


def client_answering(*answers: httpx.Response, **options: int) -> tuple[Client, list[float]]:
    """A client whose transport gives `answers` in turn; the times each request was sent."""
    sent: list[float] = []
    queue = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(time.monotonic())
        return queue.pop(0)

    client = Client(
        base_url="http://tollhouse.test",
        api_key="th_test",
        transport=httpx.MockTransport(answer),
        **options,  # type: ignore[arg-type]
    )
    return client, sent


def test_retry_after_as_an_http_date_is_waited_for() -> None:
    later = email.utils.formatdate(time.time() + 1.5, usegmt=True)
    client, sent = client_answering(
        httpx.Response(429, headers={"Retry-After": later}), httpx.Response(200, json=HEALTHY)
    )

    assert client.health.check().status == "ok"
    assert 0.4 <= sent[1] - sent[0] <= 2.5  # the date has whole seconds


def test_retry_after_beyond_the_cap_is_raised_at_once() -> None:
    client, sent = client_answering(
        httpx.Response(429, headers={"Retry-After": "3600"}, json={"type": "x/rate-limited"})
    )

    with pytest.raises(RateLimitError) as raised:
        client.health.check()

    assert len(sent) == 1 and raised.value.code == "rate-limited"


def test_backoff_grows_and_is_capped() -> None:
    waits = [_base._backoff(attempt) for attempt in range(8)]

    assert 0.375 <= waits[0] <= 0.5
    assert 0.75 <= waits[1] <= 1.0
    assert all(w <= _base.MAX_RETRY_DELAY_SECONDS for w in waits)
    assert waits[7] >= 0.75 * _base.MAX_RETRY_DELAY_SECONDS


def test_an_answer_that_is_not_json_keeps_its_text() -> None:
    client, _ = client_answering(
        httpx.Response(502, text="Bad Gateway from the balancer"), max_retries=0
    )

    with pytest.raises(InternalServerError) as raised:
        client.health.check()

    assert raised.value.status == 502
    assert raised.value.detail == "Bad Gateway from the balancer"
    assert raised.value.type == "about:blank"


def test_an_unlisted_status_is_the_base_status_error() -> None:
    client, _ = client_answering(
        httpx.Response(413, json={"type": "https://tollhouse.dev/problems/payload-too-large"})
    )

    with pytest.raises(APIStatusError) as raised:
        client.health.check()

    assert type(raised.value) is APIStatusError and raised.value.code == "payload-too-large"


def test_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOLLHOUSE_URL", "http://tollhouse.internal:9000/")
    monkeypatch.setenv("TOLLHOUSE_API_KEY", "th_live_fromenv")

    with Client() as client:
        assert client.base_url == "http://tollhouse.internal:9000"
        assert client.headers["Authorization"] == "Bearer th_live_fromenv"


def test_no_key_anywhere_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOLLHOUSE_API_KEY", raising=False)

    with pytest.raises(ValueError, match="TOLLHOUSE_API_KEY"):
        Client()
