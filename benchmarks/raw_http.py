"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load benchmarks: the
client's own CPU cost must stay far below the server's on a shared 2-core machine
(httpx spends about as much per request as the server does). It speaks exactly what
lagtrain's server answers: Content-Length bodies, or an SSE stream read line by line.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any


class Connection:
    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port, self.token = host, port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()

    def _send(
        self, method: str, path: str, body: bytes = b"", extra: str = "", token: str | None = None
    ) -> None:
        assert self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {token or self.token}\r\n{extra}"
        )
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)

    async def _head(self) -> tuple[int, dict[str, str]]:
        assert self.reader is not None
        status = int((await self.reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while True:
            line = (await self.reader.readline()).decode().rstrip("\r\n")
            if not line:
                return status, headers
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()

    async def request(
        self, method: str, path: str, payload: Any = None, *, token: str | None = None
    ) -> tuple[int, Any]:
        body = b"" if payload is None else json.dumps(payload).encode()
        self._send(method, path, body, token=token)
        status, headers = await self._head()
        assert self.reader is not None
        data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("content-type", "").startswith("application/json"):
            return status, json.loads(data)
        return status, data.decode(errors="replace") or None  # e.g. a 500's plain text

    async def sse(self, path: str) -> AsyncIterator[tuple[str, str, str]]:
        """(event, id, data) of each event of the stream at `path`, until it ends."""
        self._send("GET", path, extra="Accept: text/event-stream\r\n")
        status, headers = await self._head()
        if status != 200:
            raise RuntimeError(f"GET {path}: HTTP {status}")
        assert self.reader is not None
        chunked = headers.get("transfer-encoding") == "chunked"
        event, event_id, data = "message", "", ""
        async for line in self._lines(chunked):
            if not line:
                if data:
                    yield event, event_id, data
                event, event_id, data = "message", "", ""
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()

    async def _lines(self, chunked: bool) -> AsyncIterator[str]:
        assert self.reader is not None
        if not chunked:
            while line := await self.reader.readline():
                yield line.decode().rstrip("\r\n")
            return
        pending = b""
        while True:
            size = int((await self.reader.readline()).strip(), 16)
            if size == 0:
                return
            pending += await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line.decode().rstrip("\r")
