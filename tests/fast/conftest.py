"""The fast tier: the services, the publisher and the sweeper over the in-memory stores.

The stores keep S3's conditional-write semantics (``gateway.store.memory``), and the index is
a small legacy-upload server on loopback that really receives the multipart bodies and lists
what it holds with each file's sha256. Where the index's own behaviour is the point, the
integration suite runs against pypiserver and devpi.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from packaging.utils import canonicalize_name

from gateway.auth.principals import Principal
from gateway.domain.records import FileUpload, PublishingSession
from gateway.gates.wiring import Gates
from gateway.protocol.models import FileCreateRequest
from gateway.publish.backends.base import Backend, BackendUnavailable, IndexFile, Listing
from gateway.publish.journal import Journals
from gateway.publish.publisher import Publisher
from gateway.publish.worker import PublishWorker
from gateway.services.audit import NO_AUDIT
from gateway.services.due_index import DueIndex
from gateway.services.files import FileService
from gateway.services.names import NameRegistry
from gateway.services.session_files import SessionFiles
from gateway.services.session_status import SessionStatus
from gateway.services.sessions import SessionService
from gateway.services.sweeper import Sweeper
from gateway.services.uploads import UploadRecords
from gateway.settings import Settings, load_settings
from gateway.store.blobs import BlobStore
from gateway.store.memory import MemoryBlobStore, MemoryRecordStore
from gateway.store.record_store import Stored
from gateway.wiring import wire

ALICE = Principal("config:alice", "alice", ("*",))
BOB = Principal("config:bob", "bob", ("*",))


class ReadCountingStore(MemoryRecordStore):
    """The in-memory store, counting its reads (``GetObject``s)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, key: str) -> Stored | None:
        self.reads += 1
        return await super().get(key)


@dataclass
class FakeIndex:
    """A legacy upload endpoint and its listing: filename -> sha256, per project."""

    files: dict[str, dict[str, str]] = field(default_factory=dict)
    failures: int = 0  # answer this many uploads with 503 first
    down: bool = False  # listings fail as if the index did not answer
    refused: set[str] = field(default_factory=set)  # filenames it answers 400 for
    uploads: int = 0
    # Run once a file is held, before the answer goes out (a test's view of "meanwhile").
    after_upload: Callable[[], Awaitable[None]] | None = None

    async def upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get(":action") != "file_upload":
            return web.Response(status=400, reason="not an upload")
        if self.failures:
            self.failures -= 1
            return web.Response(status=503, reason="Busy")
        content = cast(web.FileField, form["content"])
        if content.filename in self.refused:
            return web.Response(status=400, reason="Refused")
        digest = hashlib.sha256(content.file.read()).hexdigest()
        if form.get("sha256_digest") != digest:
            return web.Response(status=400, reason="Digest mismatch")
        held = self.files.setdefault(canonicalize_name(str(form["name"])), {})
        if content.filename in held:
            return web.Response(status=409, reason="File already exists")
        held[content.filename] = digest
        self.uploads += 1
        if self.after_upload is not None:
            await self.after_upload()
        return web.Response(text="OK")


class FakeBackend(Backend):
    kind: ClassVar[str] = "fast-tier"

    def __init__(self, index: FakeIndex, settings: Settings, http: aiohttp.ClientSession):
        super().__init__(settings.backend, http)
        self.index = index

    def listing_url(self, project: str) -> str:
        return self.simple_url + project + "/"

    async def published_files(self, project: str) -> Listing:
        await asyncio.sleep(0)
        if self.index.down:
            raise BackendUnavailable("the fast-tier index is down")
        return dict(self.index.files.get(project, {}))

    async def release_files(self, project: str) -> list[IndexFile]:
        return []  # only the preview page's comparison reads it; the integration suite tests that


@dataclass
class Stack:
    settings: Settings
    records: MemoryRecordStore
    blobs: MemoryBlobStore
    index: FakeIndex
    names: NameRegistry
    due: DueIndex
    sessions: SessionService
    files: FileService
    publisher: Publisher
    journals: Journals
    worker: PublishWorker
    sweeper: Sweeper
    uploads: UploadRecords
    http: aiohttp.ClientSession  # the stack's own, shared with the index's listings
    session_files: SessionFiles
    gates: Gates
    status: SessionStatus

    async def settle(self) -> None:
        """Let background work (deferred validations, publish workers) finish."""
        for _ in range(100):
            pending = [*self.worker.tasks, *self.files.validations]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)


def fast_settings(index_url: str, **sections: dict[str, Any]) -> Settings:
    values: dict[str, dict[str, Any]] = {
        "server": {"public_base_url": "https://uploads.example.test"},
        "s3": {
            "endpoint_url": "http://127.0.0.1:9",  # never contacted: the stores are in memory
            "bucket": "fast",
            "access_key_id": "unused",
            "secret_access_key": "unused",
        },
        "backend": {
            "kind": "pypiserver",
            "upload_url": index_url,
            "simple_url": index_url + "simple/",
        },
        "publish": {"sync_wait": 5.0, "lease": 60, "retries": 1},
    }
    for section, overrides in sections.items():
        values.setdefault(section, {}).update(overrides)
    return load_settings(None, **values)


MakeStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeStack]:
    # Retries back off by half a second and more; the fast tier does not wait for them.
    for module in ("posting", "index_listings"):  # where the worker's retries wait
        monkeypatch.setattr(f"gateway.publish.{module}.backoff", lambda attempt: 0.0)
    index = FakeIndex()
    app = web.Application()
    app.router.add_post("/", index.upload)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession()
    stacks: list[Stack] = []

    async def make(**sections: dict[str, Any]) -> Stack:
        settings = fast_settings(str(server.make_url("/")), **sections)
        stack = build_stack(settings, index, http, MemoryRecordStore(), MemoryBlobStore())
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        await stack.worker.drain()
    await http.close()
    await server.close()


@pytest.fixture
async def stack(make_stack: MakeStack) -> Stack:
    return await make_stack()


def build_stack(
    settings: Settings,
    index: FakeIndex,
    http: aiohttp.ClientSession,
    records: MemoryRecordStore,
    memory_blobs: MemoryBlobStore,
) -> Stack:
    """Wired as ``gateway.app`` wires the services, over the in-memory stores."""
    blobs = cast(BlobStore, memory_blobs)
    core = wire(settings, records, blobs, FakeBackend(index, settings, http), http, NO_AUDIT)
    return Stack(
        settings,
        records,
        memory_blobs,
        index,
        core.names,
        core.due,
        core.sessions,
        core.files,
        core.publisher,
        core.journals,
        core.worker,
        core.sweeper,
        core.uploads,
        http,
        core.session_files,
        core.gates,
        core.status,
    )


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[start : start + size]


def file_request(path: Path, mechanism: str = "http-post-bytes") -> FileCreateRequest:
    data = path.read_bytes()
    return FileCreateRequest.model_validate(
        {
            "meta": {"api-version": "2.0"},
            "filename": path.name,
            "size": len(data),
            "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
            "mechanism": mechanism,
        }
    )


async def upload(
    stack: Stack, session: PublishingSession, path: Path, data: bytes | None = None
) -> FileUpload:
    """Create, send and complete one file; the completed upload."""
    upload = await stack.files.create(session, file_request(path))
    await stack.files.receive(session, upload.id, chunks(data or path.read_bytes()), None)
    completed, done = await stack.files.complete(session, upload.id)
    assert done
    return completed


@pytest.fixture
def project(project_name: str) -> str:
    """The fast tier's short name for the suite's unique ``project_name``."""
    return project_name
