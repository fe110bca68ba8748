"""A raw HTTP/1.1 client on one TCP connection, for tests of keep-alive.

httpx silently opens a new connection when the server closed the last one; these tests need
to know that the same connection answered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import orjson


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    """Field names lower-cased; a repeated field keeps its last value."""
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


class Connection:
    """One keep-alive connection to `base_url`; requests on it go one after the other."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Connection:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._writer is not None
        self._writer.close()
        await self._writer.wait_closed()

    async def request(
        self,
        method: str,
        target: bytes | str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        chunked: bool = False,
    ) -> RawResponse:
        """Send one request and read its response.

        `target` is sent as given (bytes are not percent-encoded); the body goes with its
        `content-length`, or `chunked` in chunks of at most 4 KiB.

        Raises:
            ConnectionError: the server closed the connection before a whole response.
        """
        assert self._reader is not None and self._writer is not None
        if isinstance(target, str):
            target = target.encode()
        fields = {"host": f"{self.host}:{self.port}", **(headers or {})}
        if chunked:
            fields["transfer-encoding"] = "chunked"
            pieces = [body[i : i + 4096] for i in range(0, len(body), 4096)]
            body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        elif body or method in ("POST", "PUT", "PATCH"):
            fields["content-length"] = str(len(body))
        head = method.encode() + b" " + target + b" HTTP/1.1\r\n"
        head += b"".join(f"{k}: {v}\r\n".encode() for k, v in fields.items()) + b"\r\n"
        self._writer.write(head + body)
        await self._writer.drain()
        return await self._read_response()

    async def _read_response(self) -> RawResponse:
        reader = self._reader
        assert reader is not None
        try:
            status_line = await reader.readuntil(b"\r\n")
            headers: dict[str, str] = {}
            while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding", "").lower() == "chunked":
                body = b""
                while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                    body += await reader.readexactly(size)
                    await reader.readexactly(2)
                await reader.readuntil(b"\r\n")
            else:
                body = await reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            raise ConnectionError("the server closed the connection") from exc
        return RawResponse(int(status_line.split()[1]), headers, body)
