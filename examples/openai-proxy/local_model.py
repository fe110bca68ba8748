"""A stand-in for a local OpenAI-compatible model server (vLLM, Ollama, llama.cpp), to try the
gateway without a GPU: `POST /v1/chat/completions` answers by echoing the last user message,
whole or streamed (server-sent events, a usage chunk last when `stream_options.include_usage`
is set, as OpenAI's API does), and reports usage as one token per word.

Run: `uvicorn local_model:app --port 8000`
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

app = FastAPI()


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


@app.post("/v1/chat/completions")
async def chat(request: Request) -> Any:
    body = await request.json()
    prompt = " ".join(str(m.get("content", "")) for m in body["messages"])
    reply = f"You said: {body['messages'][-1]['content']}"
    usage = {"prompt_tokens": _tokens(prompt), "completion_tokens": _tokens(reply)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    base = {"id": "chatcmpl-local", "created": int(time.time()), "model": body["model"]}
    if not body.get("stream"):
        return JSONResponse({
            **base, "object": "chat.completion", "usage": usage,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply}}],
        })  # fmt: skip

    async def events() -> AsyncIterator[str]:
        for word in reply.split(" "):
            chunk = {**base, "object": "chat.completion.chunk",
                     "choices": [{"index": 0, "delta": {"content": word + " "}}]}  # fmt: skip
            yield f"data: {json.dumps(chunk)}\n\n"
        done = {**base, "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip
        yield f"data: {json.dumps(done)}\n\n"
        if (body.get("stream_options") or {}).get("include_usage"):
            yield f"data: {json.dumps({**base, 'object': 'chat.completion.chunk', 'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
