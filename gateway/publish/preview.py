"""What a stage's preview page shows: the staged release, read from the store and compared
with the latest release the backing index holds (issue #20, docs/preview.md).

Same capability rules as the stage (R-S2): the token is enough, and an ended or unknown
session is the same 404. Nothing is cached: each view reads the stored metadata and asks the
index again, within the index's timeout; an index that cannot answer costs the comparison,
never the page.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from packaging.metadata import InvalidMetadata, Metadata
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from gateway.distribution.archive import DistributionError, extract_metadata
from gateway.distribution.checks import index_refusals
from gateway.distribution.readme import render_description
from gateway.domain import clock
from gateway.domain.records import FileUpload, PublishingSession
from gateway.gates.provenance import ProvenanceStore
from gateway.logs import log
from gateway.publish.backends import Backend, BackendError
from gateway.publish.backends.base import IndexFile
from gateway.publish.backends.remote import open_remote
from gateway.services.stage import StageService
from gateway.stage.compare import Comparison, compare, differing_fields, latest_release
from gateway.stage.preview import Preview, PreviewFile

__all__ = ["PreviewService"]

# A previous release's sdist is only read this far looking for its PKG-INFO.
MAX_PREVIOUS_SCAN_BYTES = 32 << 20
_CONCURRENT_READS = 8


class PreviewService:
    def __init__(
        self,
        stage: StageService,
        backend: Backend,
        checks_at_completion: bool,
        provenance: ProvenanceStore,
    ) -> None:
        self._stage = stage
        self._backend = backend
        self._checks_at_completion = checks_at_completion
        self._provenance = provenance  # who each file's attestations name (R-W11)

    async def preview(self, token: str, stage_url: str) -> Preview:
        session, uploads = await self._stage.open(token)
        # The order the publish sends them: the index keeps the first one's metadata.
        uploads = sorted(uploads, key=lambda u: (u.filename.endswith(".tar.gz"), u.filename))
        metadata = await self._read_all(session, uploads)
        publishers = await asyncio.gather(
            *(self._provenance.staged_publishers(session, u) for u in uploads)
        )
        files = [
            replace(self._file(stage_url, u, metadata.get(u.id)), publisher=publisher)
            for u, publisher in zip(uploads, publishers, strict=True)
        ]
        main = next((metadata[u.id] for u in uploads if u.id in metadata), None)
        main_from = next((u.filename for u in uploads if u.id in metadata), None)
        description = None
        if main is not None and main.description:
            description = render_description(main.description, main.description_content_type)
        comparison, note = await self._compare(session, main, [u.filename for u in uploads])
        return Preview(
            project=session.name,
            version=session.version,
            stage_url=stage_url,
            expires_at=clock.rfc3339(session.expires_at),
            files=files,
            metadata=main,
            metadata_from=main_from,
            description=description,
            comparison=comparison,
            comparison_note=note,
            refused_at_completion=self._checks_at_completion,
            differing_fields=differing_fields(list(metadata.values())),
        )

    async def _read_all(
        self, session: PublishingSession, uploads: list[FileUpload]
    ) -> dict[str, Metadata]:
        limit = asyncio.Semaphore(_CONCURRENT_READS)

        async def read(upload: FileUpload) -> Metadata | None:
            async with limit:
                raw = await self._stage.metadata(session, upload)
            return _parse(raw)

        parsed = await asyncio.gather(*(read(upload) for upload in uploads))
        return {u.id: m for u, m in zip(uploads, parsed, strict=True) if m is not None}

    def _file(self, stage_url: str, upload: FileUpload, metadata: Metadata | None) -> PreviewFile:
        assert upload.committed is not None
        if upload.filename.endswith(".whl"):
            tags = sorted(str(tag) for tag in parse_wheel_filename(upload.filename)[3])
        else:
            tags = ["source"]
        return PreviewFile(
            filename=upload.filename,
            url=stage_url + "+files/" + upload.filename,
            size=upload.committed.size,
            sha256=upload.committed.digests["sha256"],
            tags=tags,
            attestations=upload.has_attestations,
            refusals=index_refusals(metadata, upload.filename) if metadata else [],
        )

    async def _compare(
        self, session: PublishingSession, current: Metadata | None, filenames: list[str]
    ) -> tuple[Comparison | None, str | None]:
        if current is None:
            return None, "Nothing to compare until a file is completed."
        try:
            async with asyncio.timeout(self._backend.settings.timeout):
                on_index = await self._backend.release_files(session.name)
                found = latest_release([f.filename for f in on_index], Version(session.version))
                if found is None:
                    return None, "The index holds no other release of this project."
                _, names = found
                chosen = _most_readable([f for f in on_index if f.filename in names])
                previous = await self._read_previous(chosen)
        except TimeoutError:
            return None, "The index did not answer in time; reload to try again."
        except (BackendError, DistributionError, OSError) as exc:
            log.warning("preview.compare_failed", project=session.name, error=str(exc))
            return None, f"The latest release on the index could not be read: {exc}"
        return compare(current, filenames, previous, names, chosen.filename), None

    async def _read_previous(self, file: IndexFile) -> Metadata:
        if file.metadata_url is not None:  # PEP 658: the METADATA on its own
            document = await self._backend.fetch(file.metadata_url, accept="*/*", operation="read")
            if document is not None:
                parsed = _parse(document.body)
                if parsed is not None:
                    return parsed
        reader = await open_remote(self._backend, file.url)
        extracted = await extract_metadata(
            reader, file.filename, max_scan_bytes=MAX_PREVIOUS_SCAN_BYTES
        )
        return extracted.metadata


def _most_readable(files: list[IndexFile]) -> IndexFile:
    """Separate METADATA first, then a wheel (metadata read by ranges), then the sdist."""
    return min(
        files,
        key=lambda f: (f.metadata_url is None, not f.filename.endswith(".whl"), f.filename),
    )


def _parse(raw: bytes) -> Metadata | None:
    try:
        return Metadata.from_email(raw, validate=True)
    except (ExceptionGroup, InvalidMetadata):
        return None  # validated at completion; an index's older file may not be
