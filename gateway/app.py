"""Application factory: settings → clients (cleanup contexts) → services → routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from gateway.api import (
    approvals,
    audit,
    files,
    health,
    integrity,
    legacy,
    reads,
    sessions,
    stage,
    yanks,
)
from gateway.api.context import SERVICES, Services
from gateway.api.middleware import draining, negotiation, problems, request_context
from gateway.api.staged import STAGE_ROUTE
from gateway.api.urls import Urls
from gateway.app_keys import DRAIN, HOPS, HTTP_CLIENT, S3_CLIENT, Drain
from gateway.auth.chain import build_chain
from gateway.logs import log
from gateway.metrics import instrument_s3
from gateway.outbound import Hop, Hops, tls_failure
from gateway.protocol.routes import ROUTES
from gateway.proxy.index_reader import IndexReader
from gateway.proxy.pages import SimplePages
from gateway.proxy.simple_api import ReadPath
from gateway.proxy.upstream import upstream_url
from gateway.publish.backends import backend_for
from gateway.publish.preview import PreviewService
from gateway.services.audit import AuditTrail
from gateway.services.legacy_staging import LegacyStaging
from gateway.services.stage import StageService
from gateway.settings import Settings
from gateway.store.audit import AuditStore
from gateway.store.blobs import BlobStore
from gateway.store.objects import SmallObjects
from gateway.store.record_store import RecordStore
from gateway.store.s3 import S3Client, ensure_bucket, open_client, open_small_objects
from gateway.wiring import Core, wire

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# What ``app.cleanup_ctx`` runs: set up to the ``yield``, clean up after it.
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def create_app(settings: Settings, *, run_sweeper: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[request_context, problems, audit.audit_context, draining, negotiation]
    )
    app[DRAIN] = Drain()
    app[HOPS] = build_hops(settings)
    app.on_shutdown.append(_start_draining)
    app.cleanup_ctx.append(_http_client(settings))
    app.cleanup_ctx.append(_s3_client(settings))
    if run_sweeper:
        app.cleanup_ctx.append(_sweeper(settings))
    _add_routes(app, settings)
    return app


def build_hops(settings: Settings) -> Hops:
    """Each outbound hop's TLS context and proxy choice; verification turned off is said aloud."""
    upstream = settings.proxy if settings.proxy.upstream else settings.backend
    hops = Hops(
        backend=Hop("backend", settings.backend.tls(), settings.backend.outbound_proxy),
        s3=settings.s3.store_config().hop(),
        upstream=Hop("proxy", upstream.tls(), upstream.outbound_proxy),
        oidc=Hop("oidc"),
    )
    for hop in (hops.backend, hops.s3, hops.upstream):
        if not hop.tls.verify:
            log.warning("tls.verification_disabled", hop=hop.name)
    return hops


# Each route of the table (``protocol/routes.py``) bound to its handler.
HANDLERS: dict[str, Handler] = {
    "api:create-session": sessions.create_session,
    "api:session": sessions.session_status,
    "api:cancel-session": sessions.cancel_session,
    "api:extend-session": sessions.extend_session,
    "api:publish": sessions.publish_session,
    "api:approve": approvals.approve_session,
    "api:release-session": sessions.release_session,
    "api:create-file": files.create_file,
    "api:file": files.file_status,
    "api:delete-file": files.delete_file,
    "api:complete-file": files.complete_file,
    "api:extend-file": files.extend_file,
    "mech:http-post-bytes": files.receive_bytes,
    "mech:attestations": files.attach_attestations,
    "mech:offset": files.resumable_offset,
    "mech:append": files.resumable_append,
    "stage:root": stage.root,
    "stage:file": stage.download,
    "stage:preview": stage.preview,
    "stage:project": stage.project,
    "integrity:provenance": integrity.provenance,
    "healthz": health.healthz,
    "readyz": health.readyz,
    "metrics": health.metrics_page,
    "openapi": health.openapi,
    "audit:journal": audit.read_journal,
    "yank:yank": yanks.yank,
    "yank:unyank": yanks.unyank,
}


def _add_routes(app: web.Application, settings: Settings) -> None:
    for route in ROUTES:
        path, handler = route.path(settings.server.api_root), HANDLERS[route.name]
        if route.method == "GET":  # and HEAD, as aiohttp's add_get does (the stage serves it)
            app.router.add_get(path, handler, name=route.name)
        else:
            app.router.add_route(route.method, path, handler, name=route.name)
    proxy = settings.proxy
    app.router.add_post(proxy.legacy_path, legacy.legacy_upload, name="legacy:upload")
    app.router.add_post(f"{proxy.legacy_path}+stage/", legacy.legacy_upload, name=STAGE_ROUTE)
    if proxy.legacy_at_root and proxy.legacy_path != "/":
        app.router.add_post("/", legacy.legacy_upload, name="legacy:upload-at-root")
    if proxy.read_proxy:
        # Last, so every route above wins over the catch-all.
        app.router.add_get("/{tail:.*}", reads.proxy_read, name="proxy:read")


async def _start_draining(app: web.Application) -> None:
    # aiohttp calls this first on SIGTERM, then gives in-flight requests the drain timeout.
    app[DRAIN].leaving = app[DRAIN].started = True
    log.info("shutdown.draining")


def _s3_client(settings: Settings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        config = settings.s3.store_config()
        async with (
            open_client(config) as client,
            open_small_objects(config, client) as objects,
        ):
            await _first_contact_with_s3(client, settings)
            instrument_s3(client)
            app[S3_CLIENT] = client
            journal = await _audit_trail(client, objects, settings)
            app[SERVICES] = _services(
                settings, client, objects, app[HTTP_CLIENT], app[HOPS], journal
            )
            yield
            await app[SERVICES].publisher.drain()

    return context


async def _first_contact_with_s3(client: S3Client, settings: Settings) -> None:
    try:
        await ensure_bucket(client, settings.s3.bucket, settings.s3.create_bucket)
    except Exception as exc:  # logged with the hop's name and TLS error, then start-up fails
        log.error("startup.s3_unreachable", hop="s3", tls_error=tls_failure(exc), error=repr(exc))
        raise


def _services(
    settings: Settings,
    client: S3Client,
    objects: SmallObjects,
    http: aiohttp.ClientSession,
    hops: Hops,
    journal: AuditTrail,
) -> Services:
    s3 = settings.s3
    records = RecordStore(objects, s3.bucket, s3.prefix)
    blobs = BlobStore(client, s3.bucket, s3.prefix, s3.timeout, hops.s3, objects)
    backend = backend_for(settings.backend, http, hops.backend)
    core = wire(settings, records, blobs, backend, http, journal)
    stage = StageService(core.sessions, core.session_files, blobs, client, s3.bucket, s3.prefix)
    gates = core.gates.attestations
    return Services(
        settings=settings,
        urls=Urls(settings.server.public_base_url, settings.server.api_root),
        authenticators=build_chain(settings, http, hops),
        sessions=core.sessions,
        status=core.status,
        session_files=core.session_files,
        files=core.files,
        resumable=core.resumable,
        publisher=core.publisher,
        publish_worker=core.worker,
        names=core.names,
        stage=stage,
        preview=PreviewService(
            stage, backend, settings.backend.checks_like_pypi, core.gates.provenance
        ),
        legacy_staging=LegacyStaging(core.sessions, core.files, core.names, gates),
        sweeper=core.sweeper,
        mechanisms=list(settings.uploads.mechanisms),
        audit=journal,
        gates=gates,
        provenance=core.gates.provenance,
        approvals=core.gates.approvals,
        gate_status=core.gates.status,
        yanks=core.yanks,
        file_facts=core.file_facts,
        reads=_read_path(settings, core, http, hops),
    )


def _read_path(
    settings: Settings, core: Core, http: aiohttp.ClientSession, hops: Hops
) -> ReadPath | None:
    if not settings.proxy.read_proxy:
        return None
    upstream = upstream_url(settings)
    reader = IndexReader(http, hops.upstream, settings.backend.timeout, upstream)
    # PEP 740: the attestations work plugs its provenance links in here.
    pages = SimplePages(
        reader,
        core.file_facts,
        upstream,
        core.yanks,
        core.gates.provenance,
        core.publish_windows,
        settings.proxy.page_max_age,
    )
    simple_path = urlsplit(settings.backend.simple_url).path
    return ReadPath(pages, core.file_facts, simple_path, settings.server.public_base_url)


async def _audit_trail(client: S3Client, objects: SmallObjects, settings: Settings) -> AuditTrail:
    audit_settings = settings.audit
    if not audit_settings.enabled:
        return AuditTrail(None)
    bucket = audit_settings.bucket or settings.s3.bucket
    if bucket != settings.s3.bucket:
        await ensure_bucket(client, bucket, settings.s3.create_bucket)
    store = AuditStore(client, objects, bucket, settings.s3.prefix, settings.s3.timeout)
    return AuditTrail(store, audit_settings.retention_days)


def _http_client(settings: Settings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=10, sock_read=settings.backend.timeout
        )
        # Per host, so that the index's traffic never holds up an OIDC key fetch. Past its
        # connection limit waitress stops accepting, and a request on a connection it has not
        # accepted waits, unanswered, for a timeout (seen: 60 s under 200 publishers).
        connector = aiohttp.TCPConnector(limit_per_host=settings.backend.max_connections)
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, auto_decompress=False
        ) as client:
            app[HTTP_CLIENT] = client
            yield

    return context


def _sweeper(settings: Settings) -> CleanupContext:
    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_sweep_forever(app, settings.sessions.sweep_interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def _sweep_forever(app: web.Application, interval: int) -> None:
    while True:
        try:
            await app[SERVICES].sweeper.sweep()
        except Exception:  # a failed sweep is retried next round, never fatal
            log.exception("sweep.failed")
        await asyncio.sleep(interval)
