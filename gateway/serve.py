"""Running the service: listen, wait for SIGTERM/SIGINT, then drain gracefully (R-W5).

The runner is driven by hand rather than by ``web.run_app``: aiohttp's own shutdown marks
every connection closing first, after which it drops the rest of a request body still
arriving — an upload in flight could never finish. So the gateway drains itself: fail
readiness, keep serving for ``server.shutdown_grace`` seconds, stop listening, refuse new
writes, wait (up to ``server.drain_timeout``) until the requests in flight are done, and
only then let aiohttp close connections and run cleanup (which hands unfinished publishes
over to other replicas).
"""

from __future__ import annotations

import asyncio
import signal
import ssl

from aiohttp import web

from gateway import logs
from gateway.app import create_app
from gateway.app_keys import DRAIN
from gateway.logs import log
from gateway.settings import ServerSettings, Settings


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
        tls = server_tls(settings.server)
        site = web.TCPSite(runner, settings.server.host, settings.server.port, ssl_context=tls)
        await site.start()
        log.info(
            "serving",
            host=settings.server.host,
            port=settings.server.port,
            tls=tls is not None,
            client_certificates=bool(settings.server.tls_client_ca_file),
        )
        if tls is not None:
            reload_on_sighup(tls, settings.server)
        await until_signalled()
        drain = runner.app[DRAIN]
        # Readiness fails first; the load balancer stops sending here within the grace,
        # during which whatever still arrives is served as usual.
        drain.leaving = True
        log.info(
            "shutdown.started", in_flight=drain.in_flight, grace=settings.server.shutdown_grace
        )
        await asyncio.sleep(settings.server.shutdown_grace)
        drain.started = True
        await site.stop()
        if not await drain.wait_idle(settings.server.drain_timeout):
            log.warning("shutdown.drain_timeout", in_flight=drain.in_flight)
    finally:
        await runner.cleanup()
        log.info("shutdown.done")


def server_tls(server: ServerSettings) -> ssl.SSLContext | None:
    """The context HTTPS is served with, or None for plain HTTP."""
    if not server.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server.tls_cert_file, server.tls_key_file)
    if server.tls_client_ca_file:
        context.load_verify_locations(server.tls_client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def reload_on_sighup(context: ssl.SSLContext, server: ServerSettings) -> None:
    """SIGHUP re-reads the certificate into the live context: handshakes from then on use
    the new one; connections already open keep theirs and are not dropped."""

    def reload() -> None:
        try:
            context.load_cert_chain(server.tls_cert_file or "", server.tls_key_file)
        except (OSError, ssl.SSLError) as exc:  # a half-written renewal: keep the old one
            log.error("tls.reload_failed", error=str(exc))
            return
        log.info("tls.reloaded", cert=server.tls_cert_file)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


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
