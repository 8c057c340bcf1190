"""A TCP fault proxy: sits between the gateway and a real server (S3, the index) and
misbehaves on demand.

Modes, switchable at any time from the test:

- ``heal()``: bytes flow both ways untouched (optionally after ``latency`` seconds).
- ``reset()``: every open connection is reset (RST) and new ones are reset on accept.
- ``blackhole()``: connections stay open but nothing flows either way; new ones are accepted
  and ignored. The peer only notices through its own timeouts.
- ``cut_after(n)``: pass ``n`` more client→server bytes, then behave as ``reset()``, so a fault
  can strike in the middle of a request body; with ``once=True`` only the connections open at
  that moment are reset, and new ones flow again (a network blip). With ``downstream=True``
  the ``n`` bytes count server→client, to strike in the middle of a response body.

``forwarded`` counts the client→server bytes that went through; ``connections`` counts the
connections accepted, and ``most_at_once`` the most that were open at the same time.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from contextlib import suppress
from dataclasses import dataclass, field
from enum import Enum

from yarl import URL


class Mode(Enum):
    PASS = "pass"
    RESET = "reset"
    BLACKHOLE = "blackhole"


@dataclass(eq=False)  # identity: links live in a set
class _Link:
    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target: str):
        url = URL(target)
        assert url.host, target
        assert url.port, target
        self._target = (url.host, url.port)
        self._scheme = url.scheme
        self._path = url.path
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self.mode = Mode.PASS
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.latency = 0.0
        self._budget: int | None = None
        self._heal_after_cut = False
        self._cut_downstream = False
        self.connections = 0
        self.most_at_once = 0
        self._client_open = 0
        self.forwarded = 0

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The target's URL with the proxy's address in it."""
        return f"{self._scheme}://127.0.0.1:{self.port}{self._path}"

    async def close(self) -> None:
        self.reset()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _switch(self, mode: Mode, budget: int | None = None) -> None:
        self.mode, self._budget = mode, budget
        if mode is Mode.BLACKHOLE:
            self._flowing.clear()
        else:
            self._flowing.set()

    def heal(self, latency: float = 0.0) -> None:
        self._switch(Mode.PASS)
        self.latency = latency

    def reset(self) -> None:
        self._switch(Mode.RESET)
        for link in list(self._links):
            self._drop(link)

    def blackhole(self) -> None:
        self._switch(Mode.BLACKHOLE)

    def cut_after(self, n: int, once: bool = False, downstream: bool = False) -> None:
        self._switch(Mode.PASS, n)
        self._heal_after_cut = once
        self._cut_downstream = downstream

    def _drop(self, link: _Link) -> None:
        self._links.discard(link)
        for task in link.tasks:
            task.cancel()
        _abort_with_reset(link.client)
        if link.server is not None:
            _abort_with_reset(link.server)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(writer)
        if self.mode is Mode.RESET:
            _abort_with_reset(writer)
            return
        self._links.add(link)
        if self.mode is Mode.BLACKHOLE:
            return  # held open, never answered, until the peer gives up or a reset()
        try:
            server_reader, link.server = await asyncio.open_connection(*self._target)
        except OSError:
            self._drop(link)
            return
        upstream = asyncio.create_task(self._pump(link, reader, link.server, upstream=True))
        link.tasks = [
            upstream,
            asyncio.create_task(self._pump(link, server_reader, writer, upstream=False)),
        ]
        # Open as long as the client keeps its side open: it may open the next connection as
        # soon as it has closed this one, before the server has closed its own side.
        self._client_open += 1
        self.most_at_once = max(self.most_at_once, self._client_open)

        def client_closed(_: asyncio.Task[None]) -> None:
            self._client_open -= 1

        upstream.add_done_callback(client_closed)

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        upstream: bool,
    ) -> None:
        try:
            while chunk := await source.read(65536):
                await self._flowing.wait()
                if self.mode is Mode.RESET:
                    break
                if self.latency:
                    await asyncio.sleep(self.latency)
                if upstream != self._cut_downstream and self._budget is not None:
                    if len(chunk) >= self._budget:
                        self.reset()
                        if self._heal_after_cut:
                            self.heal()
                        return
                    self._budget -= len(chunk)
                if upstream:
                    self.forwarded += len(chunk)
                sink.write(chunk)
                await sink.drain()
            if self.mode is Mode.PASS:
                with suppress(OSError):
                    sink.write_eof()
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        self._drop(link)
