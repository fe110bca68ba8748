"""A local upstream for end-to-end tests (the real upstream cannot run here): OpenAI's API
under `/v1` (chat completions, completions, embeddings, images, speech, transcriptions and
translations, moderations, Responses) and
Anthropic's Messages API (`/v1/messages`, for an upstream whose `base_url` is the host).

Behaviour is chosen by the upstream model name the gateway sends:

| upstream model | behaviour |
| --- | --- |
| `echo` | answers normally; usage `prompt_tokens=PROMPT_TOKENS`, `completion_tokens=COMPLETION_TOKENS` |
| `max-usage` | answers normally; usage `completion_tokens` = the request's `max_tokens` (so a call priced by output tokens costs exactly its hold) |
| `no-usage` | answers without any usage (streams without the usage chunk, a Responses stream's last event with `usage: null`, a Messages stream without usage) |
| `error-500` / `error-400` | answers that status with an OpenAI error body |
| `slow` | waits `slow_seconds` before answering |
| `broken-stream` | streams two chunks (text deltas), then drops the connection |
| `slow-stream` | streams one chunk every `slow_seconds / 10` |
| `gated-stream` | streams one chunk, then waits for `gate` to be set before the rest |

Audio transcriptions and translations take OpenAI's multipart form and answer per
`response_format`: `json` (default) `{"text"}`, `verbose_json` with the WAV file's real
`duration` (read with the stdlib `wave`), `text` as plain text. Moderations answer one
unflagged result per input.

Every request is kept in `requests` (path, headers, JSON body; for a form, its fields and
`file` as `{"filename", "content_type", "size"}`) so tests can assert what the gateway
forwarded.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import wave
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TRANSCRIPT = "Hello from the audio."
PROMPT_TOKENS = 12
COMPLETION_TOKENS = 7
STREAM_PIECES = ["Hello", " from", " the", " upstream", "."]
ANSWER = "".join(STREAM_PIECES)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeUpstream:
    """Start with `await start()`; `base_url` ends with `/v1`."""

    slow_seconds: float = 5.0
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[Seen] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def host_url(self) -> str:
        """The base URL of an Anthropic upstream (the Messages API is at `/v1/messages`)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completion)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_post("/v1/images/generations", self._images)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_post("/v1/audio/translations", self._transcription)
        app.router.add_post("/v1/moderations", self._moderation)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock)
        await site.start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _seen(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(Seen(request.path, dict(request.headers), body))
        return body  # type: ignore[no-any-return]

    async def _special(self, body: dict[str, Any]) -> web.Response | None:
        model = body.get("model")
        if model == "slow":
            await asyncio.sleep(self.slow_seconds)
        if isinstance(model, str) and model.startswith("error-"):
            status = int(model.split("-")[1])
            return web.json_response(
                {"error": {"message": f"upstream says {status}", "type": "server_error"}},
                status=status,
            )
        return None

    @staticmethod
    def _usage(body: dict[str, Any]) -> dict[str, int] | None:
        if body.get("model") == "no-usage":
            return None
        completion = COMPLETION_TOKENS
        if body.get("model") == "max-usage":
            completion = int(body["max_tokens"])
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": completion,
            "total_tokens": PROMPT_TOKENS + completion,
        }

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._seen(request)
        special = await self._special(body)
        if special is not None:
            return special
        if body.get("stream"):
            return await self._stream(request, body)
        answer: dict[str, Any] = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": ANSWER},
                    "finish_reason": "stop",
                }
            ],
        }
        usage = self._usage(body)
        if usage is not None:
            answer["usage"] = usage
        return web.json_response(answer)

    async def _stream(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }
        for index, piece in enumerate(STREAM_PIECES):
            chunk = {
                **base,
                "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if body.get("model") == "slow-stream":
                await asyncio.sleep(self.slow_seconds / 10)
            if body.get("model") == "gated-stream":
                await self.gate.wait()
            if body.get("model") == "broken-stream" and index == 1:
                assert request.transport is not None
                request.transport.close()
                return response
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        usage = self._usage(body)
        include = (body.get("stream_options") or {}).get("include_usage")
        if usage is not None and include:
            await response.write(
                f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _completion(self, request: web.Request) -> web.Response:
        body = await self._seen(request)
        special = await self._special(body)
        if special is not None:
            return special
        answer: dict[str, Any] = {
            "id": "cmpl-test",
            "object": "text_completion",
            "created": 1,
            "model": body["model"],
            "choices": [{"index": 0, "text": ANSWER, "finish_reason": "stop"}],
        }
        usage = self._usage(body)
        if usage is not None:
            answer["usage"] = usage
        return web.json_response(answer)

    async def _embeddings(self, request: web.Request) -> web.Response:
        body = await self._seen(request)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response(
            {
                "object": "list",
                "model": body["model"],
                "data": [
                    {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                    for i in range(len(inputs))
                ],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "total_tokens": PROMPT_TOKENS},
            }
        )

    async def _images(self, request: web.Request) -> web.Response:
        body = await self._seen(request)
        count = int(body.get("n") or 1)
        return web.json_response(
            {
                "created": 1,
                "data": [{"url": f"https://images.invalid/{i}.png"} for i in range(count)],
            }
        )

    async def _speech(self, request: web.Request) -> web.Response:
        await self._seen(request)
        return web.Response(body=b"ID3fake-mp3-bytes", content_type="audio/mpeg")

    async def _transcription(self, request: web.Request) -> web.Response:
        form = await request.post()
        body: dict[str, Any] = {}
        duration = 0.0
        for name, value in form.items():
            if isinstance(value, web.FileField):
                audio = value.file.read()
                body[name] = {
                    "filename": value.filename,
                    "content_type": value.content_type,
                    "size": len(audio),
                }
                with wave.open(io.BytesIO(audio)) as wav:
                    duration = wav.getnframes() / wav.getframerate()
            else:
                body[name] = value
        self.requests.append(Seen(request.path, dict(request.headers), body))
        special = await self._special(body)
        if special is not None:
            return special
        answer_format = body.get("response_format", "json")
        if answer_format == "text":
            return web.Response(text=TRANSCRIPT, content_type="text/plain")
        if answer_format == "verbose_json":
            task = "translate" if request.path.endswith("translations") else "transcribe"
            return web.json_response(
                {"task": task, "language": "english", "duration": duration, "text": TRANSCRIPT}
            )
        return web.json_response({"text": TRANSCRIPT})

    async def _moderation(self, request: web.Request) -> web.Response:
        body = await self._seen(request)
        special = await self._special(body)
        if special is not None:
            return special
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        result = {"flagged": False, "categories": {"violence": False}, "category_scores": {}}
        return web.json_response(
            {"id": "modr-test", "model": body["model"], "results": [result for _ in inputs]}
        )

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's Responses API: a `response` object, or its stream of typed events."""
        body = await self._seen(request)
        special = await self._special(body)
        if special is not None:
            return special
        model = body["model"]
        usage = None
        if model != "no-usage":
            usage = {
                "input_tokens": PROMPT_TOKENS,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": COMPLETION_TOKENS,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            }
        message = {
            "type": "message",
            "id": "msg_test",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
        }
        done = _response(model, "completed", [message], usage)
        if not body.get("stream"):
            return web.json_response(done)
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": _response(model, "in_progress", [], None)}
        ]
        for piece in STREAM_PIECES:
            events.append(
                {
                    "type": "response.output_text.delta",
                    "item_id": "msg_test",
                    "output_index": 0,
                    "content_index": 0,
                    "delta": piece,
                    "logprobs": [],
                }
            )
        events.append({"type": "response.completed", "response": done})
        sse = [
            f"event: {event['type']}\ndata: {json.dumps({**event, 'sequence_number': n})}\n\n"
            for n, event in enumerate(events)
        ]
        return await self._write_events(request, model, sse)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        """Anthropic's Messages API: a `message` object, or its stream of typed events."""
        body = await self._seen(request)
        model = body["model"]
        if isinstance(model, str) and model.startswith("error-"):
            status = int(model.split("-")[1])
            kind = "api_error" if status >= 500 else "invalid_request_error"
            error = {"type": kind, "message": f"upstream says {status}"}
            return web.json_response({"type": "error", "error": error}, status=status)
        usage = None if model == "no-usage" else PROMPT_TOKENS
        message: dict[str, Any] = {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": ANSWER}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
        }
        if not body.get("stream"):
            if usage is not None:
                message["usage"] = {
                    "input_tokens": PROMPT_TOKENS,
                    "output_tokens": COMPLETION_TOKENS,
                }
            return web.json_response(message)
        start = {**message, "content": [], "stop_reason": None}
        if usage is not None:
            start["usage"] = {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": start},
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            {"type": "ping"},
        ]
        for piece in STREAM_PIECES:
            delta = {"type": "text_delta", "text": piece}
            events.append({"type": "content_block_delta", "index": 0, "delta": delta})
        events.append({"type": "content_block_stop", "index": 0})
        last: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        }
        if usage is not None:
            last["usage"] = {"output_tokens": COMPLETION_TOKENS}
        events.extend([last, {"type": "message_stop"}])
        sse = [f"event: {event['type']}\ndata: {json.dumps(event)}\n\n" for event in events]
        return await self._write_events(request, model, sse)

    async def _write_events(
        self, request: web.Request, model: str, events: list[str]
    ) -> web.StreamResponse:
        """Send `events` as a stream; `broken-stream` drops the connection after the second
        text delta."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        deltas = 0
        for event in events:
            await response.write(event.encode())
            if event.split("\n", 1)[0].endswith("delta"):
                deltas += 1
            if model == "broken-stream" and deltas == 2:
                assert request.transport is not None
                request.transport.close()
                return response
        await response.write_eof()
        return response


def _response(
    model: str, status: str, output: list[dict[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """A Responses API `response` object."""
    return {
        "id": "resp_test",
        "object": "response",
        "created_at": 1,
        "status": status,
        "model": model,
        "output": output,
        "usage": usage,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "metadata": {},
        "parallel_tool_calls": True,
        "temperature": 1.0,
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
    }
