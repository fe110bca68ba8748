"""The gateway in front of a local OpenAI-compatible server, called by the example's client
with the real `openai` SDK, whole and streamed: each call answered by the local model and
charged at its real usage ($0.10 per 1M input and $0.30 per 1M output tokens of `qwen3-8b`
in the `llm-api` preset, rounded up to a micro per call)."""

from __future__ import annotations

import sys
from pathlib import Path

import openai
from examples.conftest import Servers, environment

EXAMPLE = Path(__file__).parents[1]
sys.path.insert(0, str(EXAMPLE))
import client  # noqa: E402 (the example's own module)


def test_the_openai_sdk_through_tollhouse_is_answered_and_charged(servers: Servers) -> None:
    local = servers.start(
        [sys.executable, "-m", "uvicorn", "local_model:app", "--host", "127.0.0.1"],
        EXAMPLE, environment(),
    )  # fmt: skip
    example = servers.example(
        EXAMPLE, "llm-api", app=None, replace={"http://127.0.0.1:8000/v1": local + "/v1"}
    )
    customer_id, key = example.customer("1.00")
    before = example.available_micros(customer_id)
    sdk = openai.OpenAI(api_key=key, base_url=example.base_url + "/v1", max_retries=0)

    whole = client.ask(sdk, "Count to 3")
    streamed = client.ask_streamed(sdk, "Count to 4")
    charged = before - example.available_micros(customer_id)

    assert whole == "You said: Count to 3"
    assert streamed.strip() == "You said: Count to 4"
    assert charged == 2 * 2  # each call: 3 input and 5 output tokens, 1.8 micros, rounded up
