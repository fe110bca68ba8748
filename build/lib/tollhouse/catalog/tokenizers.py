"""Which BPE encoding counts a model's tokens: named in the catalog, or known from its name.

A model's `tokenizer` is resolved once, when the catalog loads: the YAML's `tokenizer` key
when given, else the family of the model's `upstream_model` (then of its id), else
`DEFAULT_TOKENIZER`. Families follow tiktoken's model table (`tiktoken/model.py`):

| family | encoding |
| --- | --- |
| `gpt-4o`, `chatgpt-4o`, `gpt-4.1`, `gpt-4.5`, `gpt-5`, `o1`, `o3`, `o4-mini`, `gpt-oss` | `o200k_base` |
| `gpt-4`, `gpt-3.5-turbo`, `gpt-35-turbo`, `text-embedding-3-*`, `text-embedding-ada-002`, `davinci-002`, `babbage-002` | `cl100k_base` |
| anything else (Llama, Qwen, Mistral, ...: their own tokenizers are not shipped) | `cl100k_base` |

A name belongs to a family when it is the family or continues it after `-`, `.` or `:`
(`gpt-4o-mini-2024-07-18`, `gpt-5.1`, `o3-pro`); the longest family wins (`gpt-4.1` is not
`gpt-4`). Case, an organisation prefix (`openai/gpt-4o`) and a fine-tune prefix
(`ft:gpt-4o-mini:acme::id`) are ignored. `gpt-oss` uses o200k_harmony, whose ranks are
o200k_base's (only its special tokens differ, and special tokens are counted as text).
"""

from __future__ import annotations

from typing import Literal

Tokenizer = Literal["cl100k_base", "o200k_base"]
"""A BPE encoding tollhouse ships (see `gateway.tokens`)."""

TOKENIZERS: tuple[Tokenizer, ...] = ("cl100k_base", "o200k_base")
"""Every encoding a catalog may name."""

DEFAULT_TOKENIZER: Tokenizer = "cl100k_base"
"""The encoding of a model whose family is not known."""

_O200K = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4-mini", "gpt-oss")
_CL100K = (
    "gpt-4",
    "gpt-3.5-turbo",
    "gpt-3.5",
    "gpt-35-turbo",
    "text-embedding-3",
    "text-embedding-ada-002",
    "davinci-002",
    "babbage-002",
)
_FAMILIES: tuple[tuple[str, Tokenizer], ...] = tuple(
    sorted(
        [(family, "o200k_base") for family in _O200K]
        + [(family, "cl100k_base") for family in _CL100K],
        key=lambda item: -len(item[0]),
    )
)
"""(family, encoding), longest family first."""


def tokenizer_for(model_name: str) -> Tokenizer | None:
    """The encoding of the family `model_name` belongs to, or `None` when none is known."""
    name = model_name.lower().removeprefix("ft:").rsplit("/", 1)[-1]
    for family, tokenizer in _FAMILIES:
        if name == family or (name.startswith(family) and name[len(family)] in "-.:"):
            return tokenizer
    return None
