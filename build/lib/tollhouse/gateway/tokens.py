"""Local token counts, used to size a hold before the upstream answers.

The exact usage always comes from the upstream's response; when an answer or a stream ends
without one, the delivered text is counted here instead (see `gateway/usage.py`).

Each model counts with its own encoding, `Model.tokenizer`, resolved once when the catalog
loads (`catalog.tokenizers`: o200k_base for the gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and o-series
families, cl100k_base for older OpenAI models and for every model whose family is not known).
A call looks its encoding up by that name in a dict filled at start (`warm_up`). The BPE
tables ship inside the `quicktok-v1` package (ids identical to tiktoken's, nothing downloaded
at run time; several times faster than tiktoken per call). Special-token markers are counted as
plain text. Chat overhead follows OpenAI's published accounting: 3 tokens per message plus 3
to prime the reply (openai-cookbook, "How to count tokens with tiktoken").
"""

from __future__ import annotations

from typing import Any, Protocol, cast

import quicktok

from tollhouse.catalog import TOKENIZERS, Tokenizer

TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


class Encoding(Protocol):
    """The part of a quicktok encoding used here."""

    def count(self, text: str) -> int:
        """Tokens in `text`, special-token markers counted as text."""
        ...


_ENCODINGS: dict[str, Encoding] = {}
"""Tokenizer name -> loaded encoding (each loaded once per process)."""


def encoding(tokenizer: Tokenizer) -> Encoding:
    """The loaded encoding named `tokenizer` (loaded on first use, then kept)."""
    try:
        return _ENCODINGS[tokenizer]
    except KeyError:
        loaded = _ENCODINGS[tokenizer] = cast(Encoding, quicktok.get_encoding(tokenizer))
        return loaded


def count_tokens(text: str, tokenizer: Tokenizer) -> int:
    """Tokens in `text` with the encoding `tokenizer`."""
    if not text:
        return 0
    return encoding(tokenizer).count(text)


def count_content(content: Any, tokenizer: Tokenizer) -> int:
    """Tokens in an OpenAI message `content`: a string, or a list of parts (text parts counted)."""
    if isinstance(content, str):
        return count_tokens(content, tokenizer)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += count_tokens(part["text"], tokenizer)
        return total
    return 0


def count_chat_tokens(messages: list[Any], tokenizer: Tokenizer) -> int:
    """Prompt tokens of a chat `messages` list, with OpenAI's per-message overhead."""
    total = TOKENS_PER_REPLY
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += count_content(value, tokenizer)
            elif isinstance(value, str):
                total += count_tokens(value, tokenizer)
    return total


def warm_up() -> None:
    """Load every shipped encoding now instead of on the first request."""
    for tokenizer in TOKENIZERS:
        encoding(tokenizer)
