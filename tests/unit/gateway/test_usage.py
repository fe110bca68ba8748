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

    def test_stream_with_crlf_separators_is_charged_at_its_reported_usage(self) -> None:
        meter = StreamMeter("o200k_base")
        for piece in events(*CONTENT, USAGE_ONLY, newline=b"\r\n"):
            meter.feed(piece)

        assert meter.result(ESTIMATE) == (Usage(input_tokens=12, output_tokens=7), "upstream")
        assert meter.done


CONTENT = [
    {"choices": [{"index": 0, "delta": {"content": "Hel"}}], "usage": None},
    {"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
]
USAGE_ONLY = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7}}


def events(*chunks: dict[str, object], newline: bytes = b"\n") -> list[bytes]:
    """Each chunk as one `data:` event, then a comment and the `data: [DONE]` terminator."""
    end = newline * 2
    return [b"data: " + json.dumps(chunk).encode() + end for chunk in chunks] + [
        b": keep-alive" + end,
        b"data: [DONE]" + end,
    ]


def splits(stream: bytes) -> list[list[bytes]]:
    """`stream` cut in two at every offset, and in single bytes."""
    halves = [[stream[:i], stream[i:]] for i in range(len(stream) + 1)]
    return [*halves, [stream[i : i + 1] for i in range(len(stream))]]


def run(meter: StreamMeter, pieces: list[bytes]) -> bytes:
    """What the client gets: what `feed` passes on for each piece, then the `rest`."""
    return b"".join(meter.feed(piece) for piece in pieces) + meter.rest()


class TestStreamFilter:
    """A client that did not ask for usage (`pass_usage=False`) gets no usage-only event."""

    def test_usage_only_event_is_left_out_however_the_stream_is_split(self) -> None:
        for newline in (b"\n", b"\r\n"):
            parts = events(*CONTENT, USAGE_ONLY, newline=newline)
            expected = b"".join(part for i, part in enumerate(parts) if i != len(CONTENT))
            for pieces in splits(b"".join(parts)):
                meter = StreamMeter("o200k_base", pass_usage=False)
                passed = b"".join(meter.feed(piece) for piece in pieces)

                assert passed == expected[: -len(parts[-1])], pieces  # the end held back
                assert passed + meter.rest() == expected, pieces
                assert meter.usage == (12, 7)
                assert meter.done

    def test_several_events_in_one_chunk_keep_their_bytes_and_the_done_terminator(
        self,
    ) -> None:
        meter = StreamMeter("o200k_base", pass_usage=False)
        stream = b"".join(events(*CONTENT, USAGE_ONLY))

        passed = meter.feed(stream)

        assert passed + meter.rest() == b"".join(events(*CONTENT))
        assert passed.endswith(b": keep-alive\n\n")
        assert meter.rest() == b"data: [DONE]\n\n"

    def test_usage_on_a_chunk_with_choices_is_passed_on_and_charged(self) -> None:
        last = {"choices": [{"index": 0, "delta": {"content": "!"}}], "usage": USAGE_ONLY["usage"]}
        stream = b"".join(events(CONTENT[0], last))
        meter = StreamMeter("o200k_base", pass_usage=False)

        assert run(meter, splits(stream)[-1]) == stream
        assert meter.result(ESTIMATE) == (Usage(input_tokens=12, output_tokens=7), "upstream")

    def test_an_unfinished_last_event_is_passed_on_at_the_end(self) -> None:
        meter = StreamMeter("o200k_base", pass_usage=False)
        first = events(CONTENT[0])[0]

        assert meter.feed(first + b"data: {") == first
        assert meter.rest() == b"data: {"
        assert not meter.done

    def test_the_end_and_what_follows_it_are_held_back_until_rest(self) -> None:
        for pass_usage in (False, True):
            meter = StreamMeter("o200k_base", pass_usage=pass_usage)

            assert meter.feed(b"data: [DONE]\n\ndata: {") == b""
            assert meter.feed(b"}\n\n") == b""
            assert meter.rest() == b"data: [DONE]\n\ndata: {}\n\n"

    def test_a_client_that_asked_gets_every_chunk_as_it_came(self) -> None:
        stream = b"".join(events(*CONTENT, USAGE_ONLY, newline=b"\r\n"))
        meter = StreamMeter("o200k_base", pass_usage=True)

        passed = [meter.feed(piece) for piece in splits(stream)[7]]

        assert passed == [stream[:7], stream[7 : stream.index(b"data: [DONE]")]]
        assert meter.rest() == b"data: [DONE]\r\n\r\n"
        assert meter.usage == (12, 7)
        assert meter.done

    def test_a_client_that_asked_never_gets_the_end_before_rest_however_split(self) -> None:
        stream = b"".join(events(*CONTENT, USAGE_ONLY, newline=b"\r\n"))
        done_at = stream.index(b"data: [DONE]")
        for pieces in splits(stream):
            meter = StreamMeter("o200k_base", pass_usage=True)
            passed = b"".join(meter.feed(piece) for piece in pieces)

            assert done_at <= len(passed) < len(stream), pieces
            assert passed + meter.rest() == stream, pieces
