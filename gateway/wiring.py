"""The services wired together over a record store, a blob store and an index: one place,
used by the application (over S3) and by the fast test tier (over the in-memory stores)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from gateway.gates.wiring import Gates, build_gates
from gateway.publish.backends.base import Backend
from gateway.publish.journal import Journals
from gateway.publish.publisher import Publisher
from gateway.publish.worker import PublishWorker
from gateway.services.audit import NO_AUDIT, AuditTrail
from gateway.services.files import FileService
from gateway.services.listings import RecentListings
from gateway.services.names import NameRegistry
from gateway.services.resumable import ResumableUploads
from gateway.services.sessions import SessionService
from gateway.services.sweeper import Sweeper
from gateway.services.uploads import UploadRecords
from gateway.settings import Settings
from gateway.store.blobs import BlobStore
from gateway.store.records import JsonRecords


@dataclass
class Core:
    names: NameRegistry
    uploads: UploadRecords
    sessions: SessionService
    files: FileService
    resumable: ResumableUploads
    journals: Journals
    worker: PublishWorker
    publisher: Publisher
    sweeper: Sweeper
    gates: Gates


def wire(
    settings: Settings,
    records: JsonRecords,
    blobs: BlobStore,
    backend: Backend,
    http: aiohttp.ClientSession,
    audit: AuditTrail = NO_AUDIT,
) -> Core:
    """Each service gets the settings section it needs, and asks the owners of the records it
    does not write."""
    names = NameRegistry(records, backend.published_files)
    uploads = UploadRecords(records)
    sessions = SessionService(records, blobs, settings.sessions, names, uploads)
    part_size = settings.s3.part_size
    files = FileService(
        uploads,
        blobs,
        sessions,
        names,
        settings.uploads,
        part_size,
        RecentListings(backend.published_files, settings.backend.listing_max_age),
        index_checks=settings.backend.checks_like_pypi,
    )
    journals = Journals(sessions, settings.publish.lease)
    worker = PublishWorker(
        sessions,
        names,
        journals,
        blobs,
        backend,
        http,
        settings.backend,
        settings.publish,
        files.add_notice,
    )
    base_url = settings.server.public_base_url
    gates = build_gates(settings.policy, records, blobs, sessions, audit, base_url)
    publisher = Publisher(
        sessions, names, backend, journals, worker, settings.publish, gates.publish
    )
    sessions.before_expiry = audit.session_expired  # recorded before the expiry is
    sweeper = Sweeper(sessions, files, publisher, records, settings.sessions.sweep_interval)
    files.audit = worker.audit = sweeper.audit = audit
    return Core(
        names=names,
        uploads=uploads,
        sessions=sessions,
        files=files,
        resumable=ResumableUploads(uploads, blobs, files, part_size),
        journals=journals,
        worker=worker,
        publisher=publisher,
        sweeper=sweeper,
        gates=gates,
    )
