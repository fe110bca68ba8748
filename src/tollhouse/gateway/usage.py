"""The real usage of a call, read from the upstream's answer (whole or streamed).

When the upstream reports no usage (some OpenAI-compatible servers omit it, a stream cut short
never gets to its usage chunk), the call is never recorded as free: the delivered text is
counted locally with the model's encoding (`gateway.tokens`) and the usage is flagged
`usage_source = "counted"`.

A chat or completion stream's usage is always asked of the upstream; its usage-only chunk
(`"choices": []`) reaches the client only if the client asked for it too (`StreamMeter`).
Responses streams (`ResponsesMeter`) and Anthropic Messages streams (`MessagesMeter`) always
carry their usage and pass through unchanged.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any, Literal

import orjson

from tollhouse.catalog import Tokenizer, Usage
from tollhouse.gateway.audio import billed_seconds
from tollhouse.gateway.estimate import UPLOAD_KINDS, Kind
from tollhouse.gateway.tokens import count_tokens

UsageSource = Literal["upstream", "counted", "estimate", "measured"]
"""Where a call's charged usage came from: the upstream's answer, text counted locally, the
estimate, or an uploaded audio file's measured duration (`gateway.audio`)."""


def _reported(usage: Any) -> tuple[int, int] | None:
    """`(prompt_tokens, completion_tokens)` from an OpenAI `usage` object, if well-formed."""
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens")
    completion = usage.get("completion_tokens", 0)
    if isinstance(prompt, int) and isinstance(completion, int) and prompt >= 0 and completion >= 0:
        return prompt, completion
    return None


def _choice_text(choice: Any) -> str:
    if not isinstance(choice, dict):
        return ""
    for holder in (choice.get("message"), choice.get("delta")):
        if isinstance(holder, dict) and isinstance(holder.get("content"), str):
            return str(holder["content"])
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def _reported_io(usage: Any) -> tuple[int, int] | None:
    """`(input, output)` tokens from a Responses or Anthropic `usage` object, if well-formed.

    Anthropic's `input_tokens` leaves out the prompt read from or written to its cache
    (`cache_read_input_tokens`, `cache_creation_input_tokens`): they are added, so cached
    input is charged at the model's input price (the catalog has no cache price)."""
    if not isinstance(usage, dict):
        return None
    counts = [
        usage.get(name, 0)
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
    ]
    if not all(isinstance(n, int) and n >= 0 for n in counts) or "input_tokens" not in usage:
        return None
    return counts[0] + counts[2] + counts[3], counts[1]


def _responses_text(body: Any) -> str:
    """The text of a Responses answer's `output` messages (`output_text` parts)."""
    output = body.get("output") if isinstance(body, dict) else None
    texts: list[str] = []
    for item in output if isinstance(output, list) else ():
        content = item.get("content") if isinstance(item, dict) else None
        for part in content if isinstance(content, list) else ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
    return "".join(texts)


def _messages_text(body: Any) -> str:
    """The text of an Anthropic message's `content` blocks (text, thinking, tool input)."""
    content = body.get("content") if isinstance(body, dict) else None
    texts: list[str] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        for name in ("text", "thinking"):
            if isinstance(block.get(name), str):
                texts.append(block[name])
        if "input" in block:
            texts.append(orjson.dumps(block["input"]).decode())
    return "".join(texts)


def usage_from_body(
    kind: Kind, body: Any, estimate: Usage, tokenizer: Tokenizer
) -> tuple[Usage, UsageSource]:
    """Usage of a non-streamed answer `body` (parsed JSON, or None when not JSON); text
    without a reported usage is counted with `tokenizer`; an audio upload's is the
    upstream's `duration`, else the measured one (`estimate`, see `gateway.audio`)."""
    if kind in UPLOAD_KINDS:
        duration = body.get("duration") if isinstance(body, dict) else None
        if (
            isinstance(duration, int | float)
            and not isinstance(duration, bool)
            and math.isfinite(duration)
            and duration >= 0
        ):
            return Usage(audio_seconds=billed_seconds(duration)), "upstream"
        return estimate, "measured"
    if kind in ("chat", "completion", "embedding"):
        reported = _reported(body.get("usage")) if isinstance(body, dict) else None
        if reported is not None:
            prompt, completion = reported
            return Usage(input_tokens=prompt, output_tokens=completion), "upstream"
        text = ""
        if isinstance(body, dict) and isinstance(body.get("choices"), list):
            text = "".join(_choice_text(choice) for choice in body["choices"])
        return replace(estimate, output_tokens=count_tokens(text, tokenizer)), "counted"
    if kind == "responses" or kind == "messages":
        reported = _reported_io(body.get("usage")) if isinstance(body, dict) else None
        if reported is not None:
            return Usage(input_tokens=reported[0], output_tokens=reported[1]), "upstream"
        text = _responses_text(body) if kind == "responses" else _messages_text(body)
        return replace(estimate, output_tokens=count_tokens(text, tokenizer)), "counted"
    if kind == "image":
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, list):
            return Usage(images=len(data)), "upstream"
        return estimate, "estimate"
    return estimate, "estimate"


_EVENT_END = re.compile(rb"\n\r?\n")
"""The blank line that ends a server-sent event: lines end in LF or CRLF (a lone CR, which
the SSE format also allows, is not used by OpenAI-compatible servers and not recognised).
The event before it keeps the CR of a CRLF; starting with a literal LF keeps the search a
fast scan (a pattern starting with an optional CR costs ten times more)."""


class StreamMeter:
    """Reads an OpenAI server-sent-event stream as it passes through, and says what to pass on.

    Keeps the `usage` of the stream (the usage-only chunk, `"choices": []`, sent when
    `stream_options.include_usage` is on; or a `usage` on a chunk with choices, as some
    upstreams send) and the delivered text, to count with `tokenizer` when no usage arrives.

    With `pass_usage` (the client asked for the usage chunk) every byte is passed on as it
    comes. Without it, usage-only events are left out, so that every chunk the client gets has
    `choices[0]`: whole events are passed on once their blank line has arrived, unchanged,
    chunks with choices and a `usage` included; the rest (comments) too.

    The stream's end (`data: [DONE]`; a subclass's last event) is held back, with whatever
    follows it, until `rest()`: the gateway charges the call before the client sees its end.
    Of that last event only bytes that came before its chunk can have been passed on, never
    its blank line, so a client's SSE parser cannot have read it.
    """

    __slots__ = ("_buffer", "_held", "_pass_usage", "_text", "_tokenizer", "done", "usage")

    def __init__(self, tokenizer: Tokenizer, *, pass_usage: bool = True) -> None:
        self._tokenizer = tokenizer
        self._pass_usage = pass_usage
        self._buffer = b""
        self._held: list[bytes] = []
        self._text: list[str] = []
        self.usage: tuple[int, int] | None = None
        self.done = False
        """The stream's end was read (its bytes from there on are held back)."""

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes of the stream (any split); return the bytes to pass on now.

        Complete events are read. With `pass_usage`, the answer is `chunk` itself; without,
        the complete events not yet passed on, less the usage-only ones (b"" while an event
        is incomplete). Either way, from the stream's end on nothing is passed on (`rest`)."""
        if self.done:
            self._held.append(chunk)
            return b""
        buffer = self._buffer + chunk if self._buffer else chunk
        passed: list[bytes] = []
        kept_from = end = 0
        for match in _EVENT_END.finditer(buffer):
            start, end = end, match.end()
            usage_only = self._read(buffer[start : match.start()])
            if self.done:
                self._buffer = b""
                if self._pass_usage:  # `buffer` starts with bytes already passed on
                    cut = max(0, start - (len(buffer) - len(chunk)))
                    self._held.append(chunk[cut:])
                    return chunk[:cut]
                self._held.append(buffer[start:])
                passed.append(buffer[kept_from:start])
                return b"".join(passed)
            if usage_only and not self._pass_usage:
                passed.append(buffer[kept_from:start])
                kept_from = end
        self._buffer = buffer[end:]
        if self._pass_usage:
            return chunk
        passed.append(buffer[kept_from:end])
        return b"".join(passed)

    def rest(self) -> bytes:
        """At the end of the stream, the bytes held back and still to pass on: its end and
        what followed (`done`), else an incomplete last event, unread and unchanged (b"" with
        `pass_usage`, which passed it on as it came)."""
        if self.done:
            return b"".join(self._held)
        return b"" if self._pass_usage else self._buffer

    def _read(self, event: bytes) -> bool:
        """Read one event (without its blank line, maybe with a last CR); True if it is a
        usage-only chunk."""
        if b"\n" not in event:  # one line: the usual event
            if not event.startswith(b"data:"):
                return False
            payload = event[5:].strip()
        else:  # the values of its `data:` lines joined by LF (JSON allows the CRs left)
            data = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
            if not data:
                return False
            payload = b"\n".join(data).strip()
        if payload == b"[DONE]":
            self.done = True
            return False
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return False
        if not isinstance(chunk, dict):
            return False
        return self._take(chunk)

    def _take(self, chunk: dict[str, Any]) -> bool:
        """Read one event's JSON object; True if it is a usage-only chunk (to leave out)."""
        reported = _reported(chunk.get("usage"))
        if reported is not None:
            self.usage = reported
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return False
        for choice in choices:
            text = _choice_text(choice)
            if text:
                self._text.append(text)
        return not choices and isinstance(chunk.get("usage"), dict)

    def result(self, estimate: Usage) -> tuple[Usage, UsageSource]:
        """The usage to charge: reported by the upstream, else prompt estimate + counted text."""
        if self.usage is not None:
            prompt, completion = self.usage
            return Usage(input_tokens=prompt, output_tokens=completion), "upstream"
        counted = count_tokens("".join(self._text), self._tokenizer)
        return replace(estimate, output_tokens=counted), "counted"


RESPONSES_LAST_EVENTS = frozenset({"response.completed", "response.incomplete", "response.failed"})
"""The events that end a Responses stream, each with the whole `response` and its `usage`."""

RESPONSES_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
    }
)
"""Responses stream events whose `delta` is generated text (counted when no usage comes)."""


class ResponsesMeter(StreamMeter):
    """Reads an OpenAI Responses stream (every byte passed on unchanged): the usage of its
    last event (`response.completed`, or `response.incomplete` / `response.failed`, each
    carrying `response.usage`), which also ends it; meanwhile the text of its deltas, to
    count when the stream ends without one."""

    __slots__ = ()

    def _take(self, chunk: dict[str, Any]) -> bool:
        kind = chunk.get("type")
        if kind in RESPONSES_LAST_EVENTS:
            response = chunk.get("response")
            if isinstance(response, dict):
                self.usage = _reported_io(response.get("usage")) or self.usage
            self.done = True
        elif kind in RESPONSES_TEXT_DELTAS and isinstance(chunk.get("delta"), str):
            self._text.append(chunk["delta"])
        return False


class MessagesMeter(StreamMeter):
    """Reads an Anthropic Messages stream (every byte passed on unchanged): input tokens from
    `message_start`'s `message.usage`, output tokens from the last `message_delta`'s `usage`
    (a running total), the end from `message_stop`; meanwhile the text of its
    `content_block_delta`s (text, thinking, tool input), to count when no output total comes.
    Input without output (a stream cut short) charges the reported input and the counted
    output."""

    __slots__ = ("_input",)

    def __init__(self, tokenizer: Tokenizer) -> None:
        super().__init__(tokenizer)
        self._input: int | None = None

    def _take(self, chunk: dict[str, Any]) -> bool:
        kind = chunk.get("type")
        if kind == "content_block_delta":
            delta = chunk.get("delta")
            if isinstance(delta, dict):
                for name in ("text", "thinking", "partial_json"):
                    if isinstance(delta.get(name), str):
                        self._text.append(delta[name])
        elif kind == "message_start":
            message = chunk.get("message")
            reported = _reported_io(message.get("usage")) if isinstance(message, dict) else None
            if reported is not None:
                self._input = reported[0]
        elif kind == "message_delta":
            usage = chunk.get("usage")
            output = usage.get("output_tokens") if isinstance(usage, dict) else None
            if isinstance(output, int) and output >= 0:
                reported = _reported_io(usage)  # newer deltas carry the input total too
                self._input = reported[0] if reported is not None else self._input
                if self._input is not None:
                    self.usage = (self._input, output)
        elif kind == "message_stop":
            self.done = True
        return False

    def result(self, estimate: Usage) -> tuple[Usage, UsageSource]:
        if self.usage is None and self._input is not None:
            estimate = replace(estimate, input_tokens=self._input)
        return super().result(estimate)
