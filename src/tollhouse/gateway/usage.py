"""The real usage of a call, read from the upstream's answer (whole or streamed).

When the upstream reports no usage (some OpenAI-compatible servers omit it, a stream cut short
never gets to its usage chunk), the call is never recorded as free: the delivered text is
counted locally with the model's encoding (`gateway.tokens`) and the usage is flagged
`usage_source = "counted"`.

A stream's usage is always asked of the upstream; its usage-only chunk (`"choices": []`) reaches
the client only if the client asked for it too (`StreamMeter`).
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
    chunks with choices and a `usage` included; the rest (comments, `data: [DONE]`) too.
    """

    __slots__ = ("_buffer", "_pass_usage", "_text", "_tokenizer", "done", "usage")

    def __init__(self, tokenizer: Tokenizer, *, pass_usage: bool = True) -> None:
        self._tokenizer = tokenizer
        self._pass_usage = pass_usage
        self._buffer = b""
        self._text: list[str] = []
        self.usage: tuple[int, int] | None = None
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """Take the next bytes of the stream (any split); return the bytes to pass on now.

        Complete events are read. With `pass_usage`, the answer is `chunk` itself; without,
        the complete events not yet passed on, less the usage-only ones (b"" while an event
        is incomplete)."""
        buffer = self._buffer + chunk if self._buffer else chunk
        passed: list[bytes] = []
        kept_from = end = 0
        for match in _EVENT_END.finditer(buffer):
            start, end = end, match.end()
            if self._read(buffer[start : match.start()]) and not self._pass_usage:
                passed.append(buffer[kept_from:start])
                kept_from = end
        self._buffer = buffer[end:]
        if self._pass_usage:
            return chunk
        passed.append(buffer[kept_from:end])
        return b"".join(passed)

    def rest(self) -> bytes:
        """At the end of the stream: the bytes held back and still to pass on (an incomplete
        last event, unread and unchanged; b"" with `pass_usage`, which holds nothing back)."""
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
