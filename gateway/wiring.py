"""The services wired together over a record store, a blob store and an index: one place,
used by the application (over S3) and by the fast test tier (over the in-memory stores)."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from gateway.gates.auto_publish import AutoPublisher
from gateway.gates.wiring import Around, Gates, PendingGateWork, build_gates
from gateway.publish.backends.base import Backend
from gateway.publish.journal import Journals
from gateway.publish.publisher import Publisher
from gateway.publish.worker import PublishWorker
from gateway.services.audit import AuditTrail
from gateway.services.completed import CompletedFiles, FollowUps
from gateway.services.due_index import DueIndex
from gateway.services.file_facts import FileFactsService
from gateway.services.file_summaries import FileSummaries
from gateway.services.files import FileService
from gateway.services.listings import RecentListings
from gateway.services.names import NameRegistry
from gateway.services.publish_windows import PublishWindows
from gateway.services.resumable import ResumableUploads
from gateway.services.session_files import SessionFiles
from gateway.services.session_status import SessionStatus
from gateway.services.sessions import SessionService
from gateway.services.sweeper import Sweeper
from gateway.services.uploads import UploadRecords
from gateway.services.yanks import YankService
from gateway.settings import Settings
from gateway.store.blobs import BlobStore
from gateway.store.record_cache import CachedRecords
from gateway.store.record_store import JsonRecords


@dataclass
class Core:
    names: NameRegistry
    uploads: UploadRecords
    due: DueIndex
    session_files: SessionFiles
    sessions: SessionService
    status: SessionStatus
    files: FileService
    resumable: ResumableUploads
    journals: Journals
    worker: PublishWorker
    publisher: Publisher
    sweeper: Sweeper
    file_facts: FileFactsService
    publish_windows: PublishWindows
    yanks: YankService
    gates: Gates
    auto_publish: AutoPublisher


def wire(
    settings: Settings,
    records: JsonRecords,
    blobs: BlobStore,
    backend: Backend,
    http: aiohttp.ClientSession,
    audit: AuditTrail,
) -> Core:
    """Each service gets its settings section; it asks the owners of records it does not write."""
    records = CachedRecords(records)  # for the listings with etags: the status, publish's files
    names = NameRegistry(records, backend.published_files)
    summaries = FileSummaries(records)
    uploads = UploadRecords(records, summaries)
    due = DueIndex(records, settings.sessions.retention)
    session_files = SessionFiles(uploads, summaries, settings.uploads.max_files_per_session)
    sessions = SessionService(
        records, blobs, settings.sessions, names, session_files, due, audit.session_expired
    )
    publish_windows = PublishWindows()
    file_facts = FileFactsService(records, publish_windows)
    journals = Journals(records, due, session_files, settings.publish.lease)
    worker = PublishWorker(
        *(sessions, session_files, names, journals, blobs, backend, http),
        *(settings.backend, settings.publish),
        uploads.add_notice,  # what FileService.add_notice does: the worker needs no files
        *(audit, file_facts),
    )
    around = Around(sessions, due, uploads.add_notice)
    gates = build_gates(settings, records, blobs, session_files, audit, around)
    publisher = Publisher(
        sessions, session_files, names, backend, journals, worker, settings.publish, gates.publish
    )
    auto_publish = AutoPublisher(gates.policies, sessions, session_files, publisher, due, audit)
    # Built after the publisher: a completed file may start its release's auto-publish.
    followers = FollowUps([gates.reviews, auto_publish])
    files = _file_service(
        settings, uploads, session_files, blobs, sessions, due, names, backend, audit, followers
    )
    interval = settings.sessions.sweep_interval
    pending = PendingGateWork(gates.reviews, auto_publish)
    sweeper = Sweeper(sessions, due, files, publisher, records, audit, interval, pending)
    return Core(
        names=names,
        uploads=uploads,
        due=due,
        session_files=session_files,
        sessions=sessions,
        status=SessionStatus(records, sessions, session_files),
        files=files,
        resumable=ResumableUploads(uploads, blobs, files, settings.s3.part_size),
        journals=journals,
        worker=worker,
        publisher=publisher,
        sweeper=sweeper,
        file_facts=file_facts,
        publish_windows=publish_windows,
        yanks=YankService(records, backend.published_files, audit),
        gates=gates,
        auto_publish=auto_publish,
    )


def _file_service(
    settings: Settings,
    uploads: UploadRecords,
    session_files: SessionFiles,
    blobs: BlobStore,
    sessions: SessionService,
    due: DueIndex,
    names: NameRegistry,
    backend: Backend,
    audit: AuditTrail,
    followers: CompletedFiles,
) -> FileService:
    return FileService(
        uploads,
        blobs,
        sessions,
        due,
        names,
        settings.uploads,
        settings.s3.part_size,
        RecentListings(backend.published_files, settings.backend.listing_max_age),
        audit,
        session_files,
        index_checks=settings.backend.checks_like_pypi,
        completed=followers,
    )
