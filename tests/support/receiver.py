"""A webhook receiver: a real local HTTP server (aiohttp) an endpoint's URL points at.

It answers each POST with the next status of its `script`, then `then` (default 200), and
keeps every request it got. A 2xx answer is one "effect" (what the operator's application
would do with the event), counted per `webhook-id`, so a test sees an event acted on twice.

With `secret` set it verifies every request as a Standard Webhooks receiver does, twice:
with the reference library's verifier (`standardwebhooks.Webhook.verify`) and with
`spec_signature`, an independent implementation of the spec's algorithm; a request that
fails either is answered 401 and has no effect.

`hang_seconds` > 0 makes it wait that long before answering (timeouts); `in_flight_max`
records the most requests it was answering at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError


def spec_signature(secret: str, *, message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature, written from the spec: base64 of HMAC-SHA256 over
    `{id}.{timestamp}.{body}`, keyed with the base64-decoded part of the secret after
    `whsec_`; sent as `v1,<signature>`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass
class Received:
    """One request as the receiver got it."""

    headers: dict[str, str]
    """Lowercase names."""
    body: bytes
    status: int
    """What the receiver answered."""


@dataclass
class WebhookReceiver:
    """Start with `await start()`; POST to `url`."""

    script: list[int] = field(default_factory=list)
    """Statuses to answer, one per request, before `then`."""
    then: int = 200
    secret: str | None = None
    hang_seconds: float = 0.0
    requests: list[Received] = field(default_factory=list)
    effects: Counter[str] = field(default_factory=Counter)
    """2xx answers per `webhook-id`."""
    in_flight_max: int = 0
    port: int = 0
    _in_flight: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def verifies(self, headers: dict[str, str], body: bytes) -> bool:
        """Both verifications pass for `secret` (the library's checks the timestamp is
        within 5 minutes of the real clock, too)."""
        assert self.secret is not None
        try:
            Webhook(self.secret).verify(body.decode(), headers)
        except WebhookVerificationError:
            return False
        expected = spec_signature(
            self.secret,
            message_id=headers.get("webhook-id", ""),
            timestamp=headers.get("webhook-timestamp", ""),
            body=body,
        )
        offered = headers.get("webhook-signature", "").split(" ")
        return any(hmac.compare_digest(expected, candidate) for candidate in offered)

    async def _receive(self, request: web.Request) -> web.Response:
        self._in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self._in_flight)
        try:
            body = await request.read()
            headers = {name.lower(): value for name, value in request.headers.items()}
            if self.hang_seconds:
                await asyncio.sleep(self.hang_seconds)
            status = self.script.pop(0) if self.script else self.then
            if self.secret is not None and not self.verifies(headers, body):
                status = 401
            self.requests.append(Received(headers, body, status))
            if 200 <= status < 300:
                self.effects[headers.get("webhook-id", "")] += 1
            headers_out = {"Location": "http://127.0.0.1:9/elsewhere"} if status == 302 else {}
            return web.Response(status=status, text=f"answered {status}", headers=headers_out)
        finally:
            self._in_flight -= 1
