"""A customer's program: the official `openai` SDK pointed at tollhouse with a tollhouse key,
asking for a whole answer and a streamed one.

Run: `TOLLHOUSE_KEY=th_... python client.py` (tollhouse at http://127.0.0.1:8080)
"""

from __future__ import annotations

import os

import openai


def ask(client: openai.OpenAI, question: str) -> str:
    """One whole answer."""
    answer = client.chat.completions.create(
        model="qwen3-8b", messages=[{"role": "user", "content": question}]
    )
    return answer.choices[0].message.content or ""


def ask_streamed(client: openai.OpenAI, question: str) -> str:
    """One streamed answer, put back together."""
    stream = client.chat.completions.create(
        model="qwen3-8b", messages=[{"role": "user", "content": question}], stream=True
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


if __name__ == "__main__":
    tollhouse = openai.OpenAI(
        api_key=os.environ["TOLLHOUSE_KEY"],
        base_url=os.environ.get("TOLLHOUSE_URL", "http://127.0.0.1:8080") + "/v1",
    )
    print(ask(tollhouse, "Count to 3"))
    print(ask_streamed(tollhouse, "Count to 4"))
