"""Application keys for the long-lived clients created by cleanup contexts."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.outbound import Hops
from gateway.store.s3 import S3Client


class Drain:
    """Shutdown state. Once leaving, readiness fails while requests are still served (the
    shutdown grace, for load balancers that have not yet noticed); once started, new writes
    are turned away too, while the requests already in flight are counted down to zero."""

    def __init__(self) -> None:
        self.leaving = False
        self.started = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


S3_CLIENT = web.AppKey("s3_client", S3Client)
DRAIN = web.AppKey("drain", Drain)
HTTP_CLIENT = web.AppKey("http_client", aiohttp.ClientSession)
HOPS = web.AppKey("hops", Hops)
