"""Facts about a distribution file, keyed by its sha256 (R-W10): what the read path adds to
the index's listing (Requires-Python, the core metadata and its hash, size, upload time).

The key is the content's hash, so a record is never stale and never rewritten: whoever learns
a file first (a publish through the gateway, a legacy upload, a page request reading the
index's copy, a backfill) creates it, and everyone else finds it. This service is the record's
only writer. Records are small and immutable, so every replica keeps the ones it has read in
memory for good (bounded); only the METADATA bytes themselves are left in S3.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections import OrderedDict

from pydantic import BaseModel, ConfigDict

from gateway.distribution.archive import ExtractedMetadata, RangeReader, extract_metadata
from gateway.domain import clock
from gateway.domain.records import FileUpload
from gateway.logs import log
from gateway.services.publish_windows import PublishWindows
from gateway.store import keys
from gateway.store.record_store import JsonRecords, RecordExists

# Facts kept in memory per replica: a page of a large project lists a few thousand files.
MAX_REMEMBERED = 65536


class FileFacts(BaseModel):
    """The facts of one file; ``metadata`` (the wheel's METADATA, base64) is only in S3."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sha256: str
    filename: str
    size: int
    requires_python: str | None = None
    # PEP 658: the sha256 of the METADATA served at ``{file URL}.metadata`` (wheels only, as
    # on PyPI: an sdist's PKG-INFO may say less than the built distribution will).
    metadata_sha256: str | None = None
    upload_time: str | None = None
    learned_from: str = "index"


class StoredFacts(FileFacts):
    metadata: str | None = None


def facts_from_metadata(
    extracted: ExtractedMetadata,
    *,
    sha256: str,
    filename: str,
    size: int,
    upload_time: str | None,
    learned_from: str,
) -> StoredFacts:
    requires_python = extracted.metadata.requires_python
    wheel = filename.endswith(".whl")
    return StoredFacts(
        sha256=sha256,
        filename=filename,
        size=size,
        requires_python=str(requires_python) if requires_python else None,
        metadata_sha256=hashlib.sha256(extracted.raw).hexdigest() if wheel else None,
        upload_time=upload_time,
        learned_from=learned_from,
        metadata=base64.b64encode(extracted.raw).decode("ascii") if wheel else None,
    )


class FileFactsService:
    def __init__(
        self, records: JsonRecords, windows: PublishWindows, max_remembered: int = MAX_REMEMBERED
    ) -> None:
        self._records = records
        # Told the project of each file the gateway starts publishing (the read path's pages
        # then stop serving their cached copy of it for a while).
        self._windows = windows
        self._max = max_remembered
        self._known: OrderedDict[str, FileFacts] = OrderedDict()

    async def get(self, sha256: str) -> FileFacts | None:
        known = self._known.get(sha256)
        if known is not None:
            self._known.move_to_end(sha256)
            return known
        stored = await self._load(sha256)
        if stored is None:
            return None
        return self._remember(stored)

    async def metadata(self, sha256: str) -> bytes | None:
        """The wheel's METADATA exactly as it is in the archive (PEP 658)."""
        stored = await self._load(sha256)
        if stored is None or stored.metadata is None:
            return None
        return base64.b64decode(stored.metadata)

    async def record(self, facts: StoredFacts) -> FileFacts:
        """Keep ``facts``; when someone already did, theirs are the same content's."""
        body = facts.model_dump_json().encode()
        with contextlib.suppress(RecordExists):
            await self._records.create(keys.file_facts(facts.sha256), body)
        return self._remember(facts)

    async def published(self, upload: FileUpload, metadata: bytes | None) -> None:
        """The publish path's hook: a file the gateway is putting on the index, with the
        METADATA it parsed at completion. A failure here never fails the publish (the read path
        learns the file from the index instead), so it is only logged."""
        self._windows.opened(upload.filename)
        if upload.committed is None or upload.metadata is None:
            return
        wheel = upload.filename.endswith(".whl") and metadata is not None
        facts = StoredFacts(
            sha256=upload.committed.digests["sha256"],
            filename=upload.filename,
            size=upload.committed.size,
            requires_python=upload.metadata.requires_python,
            metadata_sha256=upload.metadata.sha256 if wheel else None,
            upload_time=clock.rfc3339(clock.now()),
            learned_from="publish",
            metadata=base64.b64encode(metadata).decode("ascii") if wheel and metadata else None,
        )
        try:
            await self.record(facts)
        except Exception as exc:  # S3 trouble: the read path will learn the file itself
            log.warning("reads.facts_not_recorded", filename=upload.filename, error=repr(exc))

    async def learn(
        self,
        reader: RangeReader,
        *,
        sha256: str,
        filename: str,
        upload_time: str | None,
        learned_from: str = "index",
    ) -> FileFacts:
        """Read the archive's core metadata through ``reader`` and keep what it says; raises
        DistributionError for an archive that is not a readable distribution."""
        extracted = await extract_metadata(reader, filename)
        facts = facts_from_metadata(
            extracted,
            sha256=sha256,
            filename=filename,
            size=reader.size,
            upload_time=upload_time,
            learned_from=learned_from,
        )
        return await self.record(facts)

    async def _load(self, sha256: str) -> StoredFacts | None:
        stored = await self._records.get(keys.file_facts(sha256))
        if stored is None:
            return None
        if stored.body is not None:
            return StoredFacts.model_validate_json(stored.body)
        return StoredFacts.model_validate(stored.data)

    def _remember(self, facts: FileFacts) -> FileFacts:
        # The page needs no METADATA bytes: keep memory to the small fields.
        light = FileFacts.model_validate(facts.model_dump(exclude={"metadata"}))
        self._known[light.sha256] = light
        self._known.move_to_end(light.sha256)
        while len(self._known) > self._max:
            self._known.popitem(last=False)
        return light
