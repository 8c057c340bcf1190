"""The fault proxies (tests/faults.py) between the replicas and S3 / the index, run on an
event loop of their own thread so that a synchronous fixture or script can hold them and a
nemesis can switch them while the replicas (other processes) go through them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

from tests.faults import FaultProxy

T = TypeVar("T")


class ProxyThread:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxies: list[FaultProxy] = []

    def proxy(self, target: str) -> FaultProxy:
        proxy = self._run(FaultProxy(target).start())
        self.proxies.append(proxy)
        return proxy

    def call(self, action: Callable[[], T]) -> T:
        """Run ``action`` (a proxy's ``heal``, ``reset``...) on the proxies' loop."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(action())
            except BaseException as exc:  # handed to the caller's thread
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result(10)

    def _run(self, coroutine: object) -> FaultProxy:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)  # type: ignore[arg-type]  # a coroutine, typed loosely for the one caller

    def close(self) -> None:
        for proxy in self.proxies:
            asyncio.run_coroutine_threadsafe(proxy.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
