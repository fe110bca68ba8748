"""Token counts for a hold's estimate: the model's own encoding, shipped, never downloaded.

Reference ids are tiktoken's (`tiktoken.get_encoding(name).encode_ordinary(text)`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.gateway.estimate import estimate
from tollhouse.gateway.tokens import (
    TOKENS_PER_MESSAGE,
    TOKENS_PER_REPLY,
    count_tokens,
    encoding,
)

RUSSIAN = "Привет, как дела? Всё хорошо."
"""17 tokens in cl100k_base, 9 in o200k_base."""
CATALOG: dict[str, Any] = {
    "version": "1",
    "plans": {"free": {"rank": 0}},
    "categories": {"text": {"requests_per_minute": 10}},
    "upstreams": {"openai": {"base_url": "https://api.openai.com/v1"}},
    "models": {
        "gpt-4o": {"category": "text", "upstream": "openai", "max_output_tokens": 10},
        "gpt-4": {"category": "text", "upstream": "openai", "max_output_tokens": 10},
        "llama": {"category": "text", "upstream": "openai", "upstream_model": "llama3.2:3b"},
        "text-embedding-3-small": {"category": "text", "upstream": "openai"},
    },
}


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog_text(yaml.safe_dump(CATALOG), source="test.yaml")


class TestCounts:
    def test_hello_world_is_two_tokens_in_each_encoding(self) -> None:
        assert count_tokens("hello world", "cl100k_base") == 2
        assert count_tokens("hello world", "o200k_base") == 2

    def test_o200k_counts_cyrillic_in_fewer_tokens_than_cl100k(self) -> None:
        assert count_tokens(RUSSIAN, "cl100k_base") == 17
        assert count_tokens(RUSSIAN, "o200k_base") == 9

    def test_special_token_markers_count_as_text(self) -> None:
        assert count_tokens("<|endoftext|>", "o200k_base") == 7

    def test_each_encoding_is_loaded_once(self) -> None:
        assert encoding("o200k_base") is encoding("o200k_base")


class TestEstimate:
    def chat(self, model: str) -> dict[str, Any]:
        return {"model": model, "messages": [{"role": "user", "content": RUSSIAN}]}

    def test_gpt_4o_prompt_is_counted_with_o200k(self, catalog: Catalog) -> None:
        usage = estimate("chat", self.chat("gpt-4o"), catalog.model("gpt-4o")).usage

        assert usage.input_tokens == TOKENS_PER_REPLY + TOKENS_PER_MESSAGE + 1 + 9

    def test_gpt_4_prompt_is_counted_with_cl100k(self, catalog: Catalog) -> None:
        usage = estimate("chat", self.chat("gpt-4"), catalog.model("gpt-4")).usage

        assert usage.input_tokens == TOKENS_PER_REPLY + TOKENS_PER_MESSAGE + 1 + 17

    def test_a_model_of_no_known_family_is_counted_with_cl100k(self, catalog: Catalog) -> None:
        usage = estimate("chat", self.chat("llama"), catalog.model("llama")).usage

        assert usage.input_tokens == TOKENS_PER_REPLY + TOKENS_PER_MESSAGE + 1 + 17

    def test_embedding_input_is_counted_with_the_models_encoding(self, catalog: Catalog) -> None:
        body = {"model": "text-embedding-3-small", "input": [RUSSIAN, "hello world"]}

        usage = estimate("embedding", body, catalog.model("text-embedding-3-small")).usage

        assert usage.input_tokens == 17 + 2


OFFLINE_PROBE = """
import json, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from tollhouse.gateway.tokens import count_tokens, warm_up

warm_up()
print(json.dumps([count_tokens(sys.argv[1], "cl100k_base"), count_tokens(sys.argv[1], "o200k_base")]))
"""


def test_encodings_load_without_network_or_cache(tmp_path: Path) -> None:
    """A fresh process with no network and an empty home and cache counts with both
    encodings, and writes nothing there: the BPE tables ship inside the package."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "QUICKTOK_DATA": str(home / "quicktok"),
        "TIKTOKEN_CACHE_DIR": str(home / "tiktoken"),
    }

    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_PROBE, RUSSIAN],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [17, 9]
    assert list(home.iterdir()) == []
