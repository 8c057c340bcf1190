"""Running the service: listen, wait for SIGTERM/SIGINT, then drain gracefully (R-W5).

The runner is driven by hand rather than by ``web.run_app``: aiohttp's own shutdown marks
every connection closing first, after which it drops the rest of a request body still
arriving — an upload in flight could never finish. So the gateway drains itself: stop
listening, fail readiness, refuse new writes, wait (up to ``server.drain_timeout``) until the
requests in flight are done, and only then let aiohttp close connections and run cleanup
(which hands unfinished publishes over to other replicas).
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from gateway import logs
from gateway.app import create_app
from gateway.app_keys import DRAIN
from gateway.logs import log
from gateway.settings import Settings


def run(settings: Settings) -> None:
    logs.configure(settings.logging.level, settings.logging.json_format)
    asyncio.run(_serve(settings))


def make_runner(settings: Settings) -> web.AppRunner:
    return web.AppRunner(
        create_app(settings),
        access_log=None,
        shutdown_timeout=settings.server.drain_timeout,
        handle_signals=False,
        # aiohttp arms this timer when a connection opens and after each response, and only a
        # complete request head stops it: a client trickling headers (slowloris) is cut off.
        keepalive_timeout=settings.server.idle_timeout,
    )


async def _serve(settings: Settings) -> None:
    runner = make_runner(settings)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.server.host, settings.server.port)
        await site.start()
        log.info("serving", host=settings.server.host, port=settings.server.port)
        await until_signalled()
        drain = runner.app[DRAIN]
        drain.started = True
        log.info("shutdown.started", in_flight=drain.in_flight)
        await site.stop()
        if not await drain.wait_idle(settings.server.drain_timeout):
            log.warning("shutdown.drain_timeout", in_flight=drain.in_flight)
    finally:
        await runner.cleanup()
        log.info("shutdown.done")


async def until_signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
