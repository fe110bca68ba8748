"""What a gateway call will cost at most, from its request body, before the upstream is called.

| route | estimate |
| --- | --- |
| chat completions | prompt tokens counted locally with the model's encoding + `max_completion_tokens`/`max_tokens` (else the model's `max_output_tokens`, else 4,096) output tokens, times `n` |
| completions | same, prompt from `prompt` |
| embeddings | input tokens counted locally with the model's encoding |
| images | `n` images (default 1) |
| audio speech | characters of `input` |
| responses | `input` (a string, or a list of items counted as chat messages) and `instructions` counted locally + `max_output_tokens` (else the model's `max_output_tokens`, else 4,096) |
| messages (Anthropic) | `messages` (as chat messages) and `system` counted locally + `max_tokens` (else as above) |
| audio transcriptions, translations | the uploaded file's duration, measured, rounded up to the whole second (`gateway/audio.py`) |
| moderations | input tokens of `input` (a string, strings, or the text parts of multimodal items) counted locally |

The hold is the model's price of this estimate; the capture is the price of the real usage,
capped at the hold (see `gateway/settle.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tollhouse.catalog import Model, RouteKind, Tokenizer, Usage
from tollhouse.gateway.audio import AudioUpload
from tollhouse.gateway.errors import InvalidRequest
from tollhouse.gateway.tokens import count_chat_tokens, count_content, count_tokens

Kind = RouteKind
"""A gateway route's kind (`catalog.routes`): decides the estimate and how usage is read."""

UPLOAD_KINDS = frozenset({"transcription", "translation"})
"""Routes whose body is a multipart audio upload (`gateway.audio`), not JSON."""

DEFAULT_MAX_OUTPUT_TOKENS = 4096
MAX_CHOICES = 16
MAX_IMAGES = 10
MAX_SPEECH_CHARACTERS = 4096
CHAT_OUTPUT_FIELDS = ("max_completion_tokens", "max_tokens")
"""The fields of a chat or completion call that cap its output, the first present wins."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """The usage a call may reach, and whether the client asked for a stream."""

    usage: Usage
    stream: bool


def _int_field(body: dict[str, Any], name: str, *, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(f"'{name}' must be an integer from {low} to {high}", param=name)
    return value


def _stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean", param="stream")
    return stream


def _text_input(value: Any, name: str, tokenizer: Tokenizer) -> int:
    """Tokens in a `prompt`/`input` that is a string or a list of strings."""
    if isinstance(value, str):
        return count_tokens(value, tokenizer)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return sum(count_tokens(v, tokenizer) for v in value)
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return len(value)  # already tokenised
    raise InvalidRequest(f"'{name}' must be a string or a non-empty list of strings", param=name)


def _output_tokens(body: dict[str, Any], model: Model, *names: str) -> int:
    """The first of the fields `names` present, capped at the model's default output."""
    cap = model.max_output_tokens or DEFAULT_MAX_OUTPUT_TOKENS
    for name in names:
        requested = _int_field(body, name, low=1, high=10_000_000)
        if requested is not None:
            return min(requested, cap)
    return cap


def _text_field(body: dict[str, Any], name: str, tokenizer: Tokenizer) -> int:
    """Tokens of an optional `instructions` / `system`: a string or a list of text parts."""
    value = body.get(name)
    if value is not None and not isinstance(value, str | list):
        raise InvalidRequest(f"'{name}' must be a string or a list of text blocks", param=name)
    return count_content(value, tokenizer)


def _responses_input(body: dict[str, Any], tokenizer: Tokenizer) -> int:
    """Tokens of a Responses call's `input` (absent when it continues a stored response)."""
    value = body.get("input")
    if value is None:
        return 0
    if isinstance(value, str):
        return count_chat_tokens([{"content": value}], tokenizer)
    if isinstance(value, list):
        return count_chat_tokens(value, tokenizer)
    raise InvalidRequest("'input' must be a string or a list of input items", param="input")


def _moderation_input(value: Any, tokenizer: Tokenizer) -> int:
    """Tokens of a moderation `input`: a string, strings, or multimodal items whose `text`
    parts are counted (an image part adds no tokens)."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        texts = [item.get("text") for item in value if item.get("type") == "text"]
        if all(isinstance(text, str) for text in texts):
            return sum(count_tokens(text, tokenizer) for text in texts)
        raise InvalidRequest("a text item of 'input' needs a string 'text'", param="input")
    return _text_input(value, "input", tokenizer)


def estimate(
    kind: Kind, body: dict[str, Any], model: Model, upload: AudioUpload | None = None
) -> Estimate:
    """The most this call can use (`upload`: the parsed form of an audio upload route).

    Raises:
        InvalidRequest: a required field is missing or has the wrong type.
    """
    if upload is not None:
        return Estimate(upload.usage, False)
    if kind == "moderation":
        tokens = _moderation_input(body.get("input"), model.tokenizer)
        return Estimate(Usage(input_tokens=tokens), False)
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty list", param="messages")
        n = _int_field(body, "n", low=1, high=MAX_CHOICES) or 1
        usage = Usage(
            input_tokens=count_chat_tokens(messages, model.tokenizer),
            output_tokens=_output_tokens(body, model, *CHAT_OUTPUT_FIELDS) * n,
        )
        return Estimate(usage, _stream_flag(body))
    if kind == "responses":
        prompt = _responses_input(body, model.tokenizer)
        usage = Usage(
            input_tokens=prompt + _text_field(body, "instructions", model.tokenizer),
            output_tokens=_output_tokens(body, model, "max_output_tokens"),
        )
        return Estimate(usage, _stream_flag(body))
    if kind == "messages":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty list", param="messages")
        usage = Usage(
            input_tokens=count_chat_tokens(messages, model.tokenizer)
            + _text_field(body, "system", model.tokenizer),
            output_tokens=_output_tokens(body, model, "max_tokens"),
        )
        return Estimate(usage, _stream_flag(body))
    if kind == "completion":
        n = _int_field(body, "n", low=1, high=MAX_CHOICES) or 1
        usage = Usage(
            input_tokens=_text_input(body.get("prompt"), "prompt", model.tokenizer),
            output_tokens=_output_tokens(body, model, *CHAT_OUTPUT_FIELDS) * n,
        )
        return Estimate(usage, _stream_flag(body))
    if kind == "embedding":
        tokens = _text_input(body.get("input"), "input", model.tokenizer)
        return Estimate(Usage(input_tokens=tokens), False)
    if kind == "image":
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            raise InvalidRequest("'prompt' must be a non-empty string", param="prompt")
        n = _int_field(body, "n", low=1, high=MAX_IMAGES) or 1
        return Estimate(Usage(images=n), False)
    text = body.get("input")
    if not isinstance(text, str) or not text or len(text) > MAX_SPEECH_CHARACTERS:
        raise InvalidRequest(
            f"'input' must be a string of 1 to {MAX_SPEECH_CHARACTERS} characters", param="input"
        )
    return Estimate(Usage(characters=len(text)), False)
