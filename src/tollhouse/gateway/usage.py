"""The real usage of a call, read from the upstream's answer (whole or streamed).

When the upstream reports no usage (some OpenAI-compatible servers omit it, a stream cut short
never gets to its usage chunk), the call is never recorded as free: the delivered text is
counted locally with the model's encoding (`gateway.tokens`) and the usage is flagged
`usage_source = "counted"`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import orjson

from tollhouse.catalog import Tokenizer, Usage
from tollhouse.gateway.estimate import Kind
from tollhouse.gateway.tokens import count_tokens

UsageSource = Literal["upstream", "counted", "estimate"]


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
    without a reported usage is counted with `tokenizer`."""
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


class StreamMeter:
    """Reads an OpenAI server-sent-event stream as it passes through, without changing it.

    Keeps the `usage` of the final chunk (sent when `stream_options.include_usage` is on) and
    the delivered text, to count with `tokenizer` when no usage arrives.
    """

    __slots__ = ("_buffer", "_text", "_tokenizer", "done", "usage")

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._buffer = b""
        self._text: list[str] = []
        self.usage: tuple[int, int] | None = None
        self.done = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream (any split); complete events are parsed."""
        self._buffer += chunk
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                return
            event, self._buffer = self._buffer[:end], self._buffer[end + 2 :]
            for line in event.split(b"\n"):
                self._line(line.rstrip(b"\r"))

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if payload == b"[DONE]":
            self.done = True
            return
        try:
            chunk = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(chunk, dict):
            return
        reported = _reported(chunk.get("usage"))
        if reported is not None:
            self.usage = reported
        choices = chunk.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                text = _choice_text(choice)
                if text:
                    self._text.append(text)

    def result(self, estimate: Usage) -> tuple[Usage, UsageSource]:
        """The usage to charge: reported by the upstream, else prompt estimate + counted text."""
        if self.usage is not None:
            prompt, completion = self.usage
            return Usage(input_tokens=prompt, output_tokens=completion), "upstream"
        counted = count_tokens("".join(self._text), self._tokenizer)
        return replace(estimate, output_tokens=counted), "counted"
