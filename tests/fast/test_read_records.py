"""The read path's records over the in-memory store (R-W10): facts keyed by content, yanks."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from gateway.services.audit import NO_AUDIT
from gateway.services.file_facts import FileFactsService
from gateway.services.listings import Listing
from gateway.services.publish_windows import PublishWindows
from gateway.services.yanks import UnknownRelease, YankService
from gateway.store import keys
from gateway.store.memory import MemoryRangeReader, MemoryRecordStore
from tests.distributions import build_sdist, build_wheel


async def test_facts_are_learned_once_per_content(tmp_path: Path) -> None:
    records = MemoryRecordStore()
    facts = FileFactsService(records, PublishWindows())
    wheel = build_wheel(tmp_path, "demo", "1.0", requires_python=">=3.9")
    data = wheel.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    learned = await facts.learn(
        MemoryRangeReader(data), sha256=sha, filename=wheel.name, upload_time=None
    )
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("demo-1.0.dist-info/METADATA")
    assert (learned.size, learned.requires_python) == (len(data), ">=3.9")
    assert learned.metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    assert await facts.metadata(sha) == metadata
    writes = records.writes
    # Another replica learning the same content finds the record taken: nothing changes.
    await FileFactsService(records, PublishWindows()).learn(
        MemoryRangeReader(data), sha256=sha, filename=wheel.name, upload_time="x"
    )
    assert records.writes == writes
    assert (await FileFactsService(records, PublishWindows()).get(sha)) == learned


async def test_an_sdist_has_no_metadata_file(tmp_path: Path) -> None:
    facts = FileFactsService(MemoryRecordStore(), PublishWindows())
    sdist = build_sdist(tmp_path, "demo", "1.0")
    data = sdist.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    learned = await facts.learn(
        MemoryRangeReader(data), sha256=sha, filename=sdist.name, upload_time=None
    )
    assert learned.metadata_sha256 is None
    assert await facts.metadata(sha) is None


async def test_yank_and_unyank_a_release_the_index_holds() -> None:
    records = MemoryRecordStore()

    async def listing(project: str) -> Listing:
        return {"demo-1.0-py3-none-any.whl": None, "demo-1.0.tar.gz": None, "demo-2.0.tar.gz": None}

    yanks = YankService(records, listing, NO_AUDIT)
    state = await yanks.set("Demo", "1.0.0", "config:alice", True, "broken")
    assert state.files == ["demo-1.0-py3-none-any.whl", "demo-1.0.tar.gz"]
    assert (await yanks.yanks("demo")).reason_for("1.0") == "broken"
    assert (await yanks.yanks("demo")).reason_for("2.0") is None
    assert keys.yanks("demo") in records.objects
    await yanks.set("demo", "1.0", "config:alice", False)
    assert (await yanks.yanks("demo")).reason_for("1.0") is None
    with pytest.raises(UnknownRelease):
        await yanks.set("demo", "3.0", "config:alice", True)
