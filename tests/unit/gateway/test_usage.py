"""Usage counted locally when the upstream reports none: with the model's own encoding."""

from __future__ import annotations

import json

from tollhouse.catalog import Usage
from tollhouse.gateway.usage import StreamMeter, usage_from_body

RUSSIAN = "Привет, как дела? Всё хорошо."
"""17 tokens in cl100k_base, 9 in o200k_base."""
ESTIMATE = Usage(input_tokens=20, output_tokens=100)


def sse(*chunks: dict[str, object]) -> bytes:
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks)


class TestCountedUsage:
    def test_answer_without_usage_is_counted_with_the_given_encoding(self) -> None:
        body = {"choices": [{"message": {"role": "assistant", "content": RUSSIAN}}]}

        o200k = usage_from_body("chat", body, ESTIMATE, "o200k_base")
        cl100k = usage_from_body("chat", body, ESTIMATE, "cl100k_base")

        assert o200k == (Usage(input_tokens=20, output_tokens=9), "counted")
        assert cl100k == (Usage(input_tokens=20, output_tokens=17), "counted")

    def test_stream_without_usage_is_counted_with_the_given_encoding(self) -> None:
        meter = StreamMeter("o200k_base")
        meter.feed(sse({"choices": [{"delta": {"content": RUSSIAN[:10]}}]}))
        meter.feed(sse({"choices": [{"delta": {"content": RUSSIAN[10:]}}]}) + b"data: [DONE]\n\n")

        assert meter.result(ESTIMATE) == (Usage(input_tokens=20, output_tokens=9), "counted")
