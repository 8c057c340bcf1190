"""Application factory: settings → clients (cleanup contexts) → services → routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway.api import audit, files, health, sessions, stage
from gateway.api.context import SERVICES, Services
from gateway.api.middleware import draining, negotiation, problems, request_context
from gateway.api.urls import Urls
from gateway.app_keys import DRAIN, HTTP_CLIENT, S3_CLIENT, Drain
from gateway.auth.chain import build_chain
from gateway.logs import log
from gateway.metrics import instrument_s3
from gateway.proxy import legacy, reads
from gateway.publish.backends import backend_for
from gateway.publish.publisher import Publisher
from gateway.services.audit import AuditTrail
from gateway.services.files import FileService
from gateway.services.names import NameRegistry
from gateway.services.resumable import ResumableUploads
from gateway.services.sessions import SessionService
from gateway.services.stage import StageService
from gateway.services.sweeper import Sweeper
from gateway.settings import Settings
from gateway.store.audit import AuditStore
from gateway.store.blobs import BlobStore
from gateway.store.records import RecordStore
from gateway.store.s3 import S3Client, ensure_bucket, open_client


def create_app(settings: Settings, *, run_sweeper: bool = True) -> web.Application:
    app = web.Application(
        middlewares=[request_context, problems, audit.audit_context, draining, negotiation]
    )
    app[DRAIN] = Drain()
    app.on_shutdown.append(_start_draining)
    app.cleanup_ctx.append(_http_client(settings))
    app.cleanup_ctx.append(_s3_client(settings))
    if run_sweeper:
        app.cleanup_ctx.append(_sweeper(settings))
    _add_routes(app, settings)
    return app


def _add_routes(app: web.Application, settings: Settings) -> None:
    root = settings.server.api_root
    session = f"{root}sessions/{{sid}}"
    app.router.add_post(root, sessions.create_session, name="api:create-session")
    app.router.add_get(session, sessions.session_status, name="api:session")
    app.router.add_delete(session, sessions.cancel_session, name="api:cancel-session")
    app.router.add_post(f"{session}/extend", sessions.extend_session, name="api:extend-session")
    app.router.add_post(f"{session}/publish", sessions.publish_session, name="api:publish")
    file = f"{session}/files/{{fid}}"
    app.router.add_post(f"{session}/files", files.create_file, name="api:create-file")
    app.router.add_get(file, files.file_status, name="api:file")
    app.router.add_delete(file, files.delete_file, name="api:delete-file")
    app.router.add_post(f"{file}/complete", files.complete_file, name="api:complete-file")
    app.router.add_post(f"{file}/extend", files.extend_file, name="api:extend-file")
    app.router.add_post(f"{file}/content", files.receive_bytes, name="mech:http-post-bytes")
    app.router.add_post(f"{file}/attestations", files.attach_attestations, name="mech:attestations")
    app.router.add_route("HEAD", f"{file}/resumable", files.resumable_offset, name="mech:offset")
    app.router.add_patch(f"{file}/resumable", files.resumable_append, name="mech:append")
    app.router.add_get("/stage/{token}/", stage.root, name="stage:root")
    app.router.add_get("/stage/{token}/+files/{filename}", stage.download, name="stage:file")
    app.router.add_get("/stage/{token}/{project}/", stage.project, name="stage:project")
    app.router.add_get("/healthz", health.healthz, name="healthz")
    app.router.add_get("/readyz", health.readyz, name="readyz")
    app.router.add_get("/metrics", health.metrics_page, name="metrics")
    app.router.add_get(f"{root}openapi.json", health.openapi, name="openapi")
    app.router.add_get(f"{root}audit", audit.read_journal, name="audit:journal")
    proxy = settings.proxy
    app.router.add_post(proxy.legacy_path, legacy.legacy_upload, name="legacy:upload")
    if proxy.legacy_at_root and proxy.legacy_path != "/":
        app.router.add_post("/", legacy.legacy_upload, name="legacy:upload-at-root")
    if proxy.read_proxy:
        # Last, so every route above wins over the catch-all.
        app.router.add_get("/{tail:.*}", reads.proxy_read, name="proxy:read")


async def _start_draining(app: web.Application) -> None:
    # aiohttp calls this first on SIGTERM, then gives in-flight requests the drain timeout.
    app[DRAIN].started = True
    log.info("shutdown.draining")


def _s3_client(settings: Settings):  # type: ignore[no-untyped-def]
    async def context(app: web.Application) -> AsyncIterator[None]:
        async with open_client(settings.s3) as client:
            await ensure_bucket(client, settings.s3.bucket, settings.s3.create_bucket)
            instrument_s3(client)
            app[S3_CLIENT] = client
            records = RecordStore(client, settings.s3.bucket, settings.s3.prefix)
            journal = await _audit_trail(client, settings)
            blobs = BlobStore(client, settings.s3.bucket, settings.s3.prefix, settings.s3.timeout)
            backend = backend_for(settings.backend, app[HTTP_CLIENT])
            names = NameRegistry(records, backend.published_files)
            session_service = SessionService(records, blobs, settings.sessions, names)
            session_service.before_expiry = journal.session_expired
            file_service = FileService(
                records, blobs, session_service, settings, backend.published_files
            )
            publisher = Publisher(
                records,
                blobs,
                session_service,
                backend,
                app[HTTP_CLIENT],
                settings,
                file_service.add_notice,
                names,
            )
            app[SERVICES] = Services(
                settings=settings,
                urls=Urls(settings.server.public_base_url, settings.server.api_root),
                authenticators=build_chain(settings, app[HTTP_CLIENT]),
                sessions=session_service,
                files=file_service,
                resumable=ResumableUploads(records, blobs, file_service, settings.s3.part_size),
                publisher=publisher,
                names=names,
                stage=StageService(
                    session_service, blobs, client, settings.s3.bucket, settings.s3.prefix
                ),
                sweeper=Sweeper(session_service, file_service, publisher),
                mechanisms=list(settings.uploads.mechanisms),
                audit=journal,
            )
            file_service.audit = publisher.audit = app[SERVICES].sweeper.audit = journal
            yield
            await publisher.drain()

    return context


async def _audit_trail(client: S3Client, settings: Settings) -> AuditTrail:
    audit_settings = settings.audit
    if not audit_settings.enabled:
        return AuditTrail(None)
    bucket = audit_settings.bucket or settings.s3.bucket
    if bucket != settings.s3.bucket:
        await ensure_bucket(client, bucket, settings.s3.create_bucket)
    store = AuditStore(client, bucket, settings.s3.prefix, settings.s3.timeout)
    return AuditTrail(store, audit_settings.retention_days)


def _http_client(settings: Settings):  # type: ignore[no-untyped-def]
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


def _sweeper(settings: Settings):  # type: ignore[no-untyped-def]
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
