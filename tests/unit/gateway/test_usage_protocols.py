"""Usage of Responses and Anthropic Messages answers, whole and streamed, at any byte split."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollhouse.catalog import Usage
from tollhouse.gateway.usage import MessagesMeter, ResponsesMeter, StreamMeter, usage_from_body

ESTIMATE = Usage(input_tokens=20, output_tokens=100)
TEXT = "Hello from the upstream."
TEXT_TOKENS = 5
"""`TEXT` in cl100k_base."""


def typed_events(*events: dict[str, Any]) -> bytes:
    """Server-sent events with an `event:` line naming each one's type, as both APIs send."""
    return b"".join(
        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events
    )


def fed(meter: StreamMeter, stream: bytes, split: int) -> StreamMeter:
    """`meter` after reading `stream` in pieces of `split` bytes; every byte passed on."""
    passed = b"".join(meter.feed(stream[i : i + split]) for i in range(0, len(stream), split))
    assert passed + meter.rest() == stream
    return meter


RESPONSE_DELTAS = [
    {"type": "response.output_text.delta", "delta": TEXT[:5]},
    {"type": "response.output_text.delta", "delta": TEXT[5:]},
]
MESSAGE_START = {
    "type": "message_start",
    "message": {"usage": {"input_tokens": 30, "cache_read_input_tokens": 1000, "output_tokens": 1}},
}
MESSAGE_DELTAS = [
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT[:5]}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT[5:]}},
]


class TestWholeAnswers:
    def test_responses_usage_is_read(self) -> None:
        body = {"output": [], "usage": {"input_tokens": 11, "output_tokens": 4}}
        assert usage_from_body("responses", body, ESTIMATE, "cl100k_base") == (
            Usage(input_tokens=11, output_tokens=4),
            "upstream",
        )

    def test_responses_without_usage_count_their_output_text(self) -> None:
        body = {"output": [{"type": "message", "content": [{"type": "output_text", "text": TEXT}]}]}
        assert usage_from_body("responses", body, ESTIMATE, "cl100k_base") == (
            Usage(input_tokens=20, output_tokens=TEXT_TOKENS),
            "counted",
        )

    def test_anthropic_cached_input_is_charged_as_input(self) -> None:
        usage = {
            "input_tokens": 5,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 1000,
            "output_tokens": 9,
        }
        assert usage_from_body("messages", {"usage": usage}, ESTIMATE, "cl100k_base") == (
            Usage(input_tokens=1105, output_tokens=9),
            "upstream",
        )

    def test_messages_without_usage_count_their_content(self) -> None:
        body = {"content": [{"type": "text", "text": TEXT}]}
        assert usage_from_body("messages", body, ESTIMATE, "cl100k_base") == (
            Usage(input_tokens=20, output_tokens=TEXT_TOKENS),
            "counted",
        )


@pytest.mark.parametrize("split", [1, 7, 10_000])
class TestStreams:
    def test_responses_usage_comes_from_response_completed(self, split: int) -> None:
        done = {
            "type": "response.completed",
            "response": {"usage": {"input_tokens": 11, "output_tokens": 4}},
        }
        meter = fed(ResponsesMeter("cl100k_base"), typed_events(*RESPONSE_DELTAS, done), split)
        assert meter.done
        assert meter.result(ESTIMATE) == (Usage(input_tokens=11, output_tokens=4), "upstream")

    def test_responses_stream_without_usage_counts_its_deltas(self, split: int) -> None:
        done = {"type": "response.completed", "response": {"usage": None}}
        meter = fed(ResponsesMeter("cl100k_base"), typed_events(*RESPONSE_DELTAS, done), split)
        assert meter.done
        assert meter.result(ESTIMATE) == (
            Usage(input_tokens=20, output_tokens=TEXT_TOKENS),
            "counted",
        )

    def test_messages_usage_comes_from_message_start_and_the_last_delta(self, split: int) -> None:
        stream = typed_events(
            MESSAGE_START,
            *MESSAGE_DELTAS,
            {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 3}},
            {"type": "message_delta", "delta": {}, "usage": {"output_tokens": 8}},
            {"type": "message_stop"},
        )
        meter = fed(MessagesMeter("cl100k_base"), stream, split)
        assert meter.done
        assert meter.result(ESTIMATE) == (Usage(input_tokens=1030, output_tokens=8), "upstream")

    def test_a_messages_stream_cut_short_charges_its_reported_input(self, split: int) -> None:
        meter = fed(
            MessagesMeter("cl100k_base"), typed_events(MESSAGE_START, *MESSAGE_DELTAS), split
        )
        assert not meter.done
        assert meter.result(ESTIMATE) == (
            Usage(input_tokens=1030, output_tokens=TEXT_TOKENS),
            "counted",
        )
