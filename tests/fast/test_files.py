"""File uploads over the in-memory stores: create, bytes, complete, replace, conflicts,
deferred validation (R-F1..F14)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.domain import clock
from gateway.domain.errors import DomainError, Kind
from gateway.domain.lease import Lease, granted
from gateway.domain.records import FileUpload
from gateway.domain.states import FileState, SessionState
from gateway.services.uploads import WriterBusy
from gateway.store import keys
from gateway.store.record_store import Listed
from tests.distributions import build_sdist, build_wheel
from tests.fast.conftest import ALICE, MakeStack, Stack, chunks, file_request, upload


async def test_create_send_complete(stack: Stack, project: str, wheel: Path) -> None:
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    created = await stack.files.create(session, file_request(wheel))
    assert created.status == FileState.PENDING
    received = await stack.files.receive(session, created.id, chunks(wheel.read_bytes()), None)
    assert received.committed is not None
    assert received.committed.size == wheel.stat().st_size
    completed, done = await stack.files.complete(session, created.id)
    assert done
    assert completed.status == FileState.COMPLETED
    assert completed.metadata is not None
    assert completed.metadata.requires_python == ">=3.8"
    # A small body's METADATA travels in the file record from the bytes path (issue #26):
    # its copy is the record's, exactly the archive's bytes; no METADATA object is written.
    assert completed.committed is not None
    raw = completed.committed.carried_metadata()
    assert raw is not None
    assert raw.startswith(b"Metadata-Version:")
    assert hashlib.sha256(raw).hexdigest() == completed.metadata.sha256
    assert keys.core_metadata(session.id, created.id) not in stack.blobs.objects


async def test_a_repeated_post_replaces_the_bytes(stack: Stack, project: str, wheel: Path) -> None:
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    created = await stack.files.create(session, file_request(wheel))
    first = await stack.files.receive(session, created.id, chunks(wheel.read_bytes()), None)
    second = await stack.files.receive(session, created.id, chunks(wheel.read_bytes()), None)
    assert first.committed is not None
    assert second.committed is not None
    staged = [key for key in stack.blobs.objects if key.endswith(".data")]
    assert staged == [keys.file_bytes(session.id, created.id, second.committed.attempt)]


async def test_a_wrong_hash_is_an_error_with_its_notice(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-F10
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    created = await stack.files.create(session, file_request(wheel))
    corrupt = bytearray(wheel.read_bytes())
    corrupt[-1] ^= 1
    await stack.files.receive(session, created.id, chunks(bytes(corrupt)), None)
    with pytest.raises(DomainError) as refused:
        await stack.files.complete(session, created.id)
    assert (refused.value.kind, refused.value.slug) == (Kind.INVALID, "hash-mismatch")
    failed = await stack.files.get(session.id, created.id)
    assert failed.status == FileState.ERROR
    assert failed.notices


async def test_one_upload_per_filename_until_completed(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-F7
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    pending = await stack.files.create(session, file_request(wheel))
    with pytest.raises(DomainError) as refused:
        await stack.files.create(session, file_request(wheel))
    assert (refused.value.kind, refused.value.slug) == (Kind.CONFLICT, "file-in-progress")
    # Declared just as the pending one: a retry whose answer was lost may carry on with it.
    assert refused.value.existing == pending.id
    await stack.files.receive(session, pending.id, chunks(wheel.read_bytes()), None)
    await stack.files.complete(session, pending.id)
    replacement = await stack.files.create(session, file_request(wheel))
    assert (await stack.files.get(session.id, pending.id)).status == FileState.CANCELED
    visible = stack.session_files.visible(await stack.session_files.records(session.id))
    assert visible[wheel.name].id == replacement.id


async def test_racing_creates_of_one_filename_leave_one_upload(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    results = await asyncio.gather(
        *(stack.files.create(session, file_request(wheel)) for _ in range(6)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, DomainError) for r in results if r not in winners)
    assert len(await stack.session_files.records(session.id)) == 1, "losers' records are removed"


async def test_files_of_another_release_are_refused(
    stack: Stack, project: str, tmp_path: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    other = build_wheel(tmp_path, project, "2.0")
    with pytest.raises(DomainError) as refused:
        await stack.files.create(session, file_request(other))
    assert refused.value.kind is Kind.INVALID


async def test_a_filename_another_publish_reserved_is_refused_at_create(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-F5, R-P8
    await stack.names.reserve_filenames(project, [wheel.name], "another-session")
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    with pytest.raises(DomainError) as refused:
        await stack.files.create(session, file_request(wheel))
    assert (refused.value.kind, refused.value.slug) == (Kind.CONFLICT, "filename-reserved")


async def test_a_sessions_creates_share_one_listing_of_its_releases_reservations(
    make_stack: MakeStack, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # R-F5, R-W13: one listing per session, not one read per file
    stack = await make_stack()
    listed: list[str] = []
    listing = stack.records.listing

    def counting_listing(prefix: str, delimiter: str | None = None) -> AsyncIterator[Listed]:
        listed.append(prefix)
        return listing(prefix, delimiter)

    monkeypatch.setattr(stack.records, "listing", counting_listing)
    tags = [f"cp31{n}-cp31{n}-manylinux_2_17_x86_64" for n in range(3)]
    wheels = [build_wheel(tmp_path, project, "1.0", tag=tag) for tag in tags]
    reservations = keys.filename_reservations(project, wheels[0].name.split("-")[0] + "-1.0")
    first, _ = await stack.sessions.create(project, "1.0", "config:alice")
    for built in wheels:
        await upload(stack, first, built)
    assert listed.count(reservations) == 1
    published = await stack.publisher.publish(await stack.sessions.get(first.id), ALICE)
    assert published.status == SessionState.PUBLISHED
    # The next session of the release lists again, within the same seconds: it began after
    # the publish reserved every filename, so its listing holds them (the index's listing,
    # shared for listing_max_age, still does not).
    again, _ = await stack.sessions.create(project, "1.0", "config:alice")
    with pytest.raises(DomainError) as refused:
        await stack.files.create(again, file_request(wheels[0]))
    assert (refused.value.kind, refused.value.slug) == (Kind.CONFLICT, "filename-reserved")
    assert listed.count(reservations) == 2


async def test_a_failed_publish_refuses_at_create_the_files_it_may_have_put_on_the_index(
    stack: Stack, project: str, wheel: Path, tmp_path: Path
) -> None:  # R-F5, R-P8: the session's own reservations, from its record
    sdist = build_sdist(tmp_path, project, "1.0")
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    await upload(stack, session, sdist)
    posted = await upload(stack, session, wheel)
    stack.index.refused = {sdist.name}  # the wheel lands, the sdist does not
    with pytest.raises(DomainError):
        await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    failed = await stack.sessions.get(session.id)
    assert failed.maybe_on_index == [wheel.name]
    await stack.files.delete(failed, posted.id)
    with pytest.raises(DomainError) as refused:
        await stack.files.create(failed, file_request(wheel))
    assert refused.value.slug == "filename-reserved"


async def test_deferred_validation_completes_in_the_background(
    make_stack: MakeStack, project: str, wheel: Path
) -> None:
    stack = await make_stack(uploads={"defer_validation_above": 1})
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    created = await stack.files.create(session, file_request(wheel))
    await stack.files.receive(session, created.id, chunks(wheel.read_bytes()), None)
    processing, done = await stack.files.complete(session, created.id)
    assert not done
    assert processing.status == FileState.PROCESSING
    assert processing.processing_deadline is not None
    await stack.settle()
    completed = await stack.files.get(session.id, created.id)
    assert completed.status == FileState.COMPLETED
    assert completed.processing_deadline is None


async def test_delete_then_upload_again(stack: Stack, project: str, wheel: Path) -> None:
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    first = await upload(stack, session, wheel)
    await stack.files.delete(session, first.id)
    assert not [key for key in stack.blobs.objects if f"/{first.id}/" in key]
    again = await upload(stack, session, wheel)
    assert again.status == FileState.COMPLETED


async def test_one_resumable_writer_at_a_time(stack: Stack, project: str, wheel: Path) -> None:
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    created = await stack.files.create(
        session, file_request(wheel, "vnd-uploadgateway-resumable-v1")
    )
    start = clock.now()
    first = granted("writer-a", timedelta(seconds=60), start)

    def free_at(moment: datetime) -> Callable[[Lease], bool]:
        return lambda lease: not lease.is_live(moment)

    await stack.uploads.hold_writer(session.id, created.id, first, free_at(start))
    second = granted("writer-b", timedelta(seconds=60), start)
    with pytest.raises(WriterBusy):
        await stack.uploads.hold_writer(session.id, created.id, second, free_at(start))
    # Past the first writer's lease, the second takes over; the first can no longer save.
    later = start + timedelta(seconds=61)
    progress = await stack.uploads.hold_writer(session.id, created.id, second, free_at(later))
    assert progress.writer == "writer-b"
    with pytest.raises(DomainError) as refused:
        await stack.uploads.save_progress(session.id, created.id, progress, first)
    assert refused.value.slug == "upload-busy"
    await stack.uploads.let_go(session.id, created.id, "writer-b")
    released = await stack.files.get(session.id, created.id)
    assert released.resumable is not None
    assert released.resumable.writer is None


async def test_completing_a_small_file_reads_nothing_back(
    stack: Stack, project: str, wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # R-W13: the bytes path read the metadata of a body that fitted in memory
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    created = await stack.files.create(session, file_request(wheel))
    received = await stack.files.receive(session, created.id, chunks(wheel.read_bytes()), None)
    assert received.committed is not None
    assert (
        received.committed.metadata_member == f"{project.replace('-', '_')}-1.0.dist-info/METADATA"
    )

    def no_reads(*args: object) -> None:
        raise AssertionError("completion read the stored archive back")

    monkeypatch.setattr(stack.blobs, "range_reader", no_reads)
    completed, done = await stack.files.complete(session, created.id)
    assert done
    assert completed.metadata is not None
    assert completed.metadata.requires_python == ">=3.8"


async def test_a_small_file_naming_another_project_is_refused_at_completion(
    stack: Stack, project: str, tmp_path: Path
) -> None:  # R-F10, checked from the metadata the bytes path read
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    impostor = build_wheel(tmp_path, project + "-other", "1.0")
    renamed = impostor.with_name(
        impostor.name.replace(impostor.name.split("-")[0], project.replace("-", "_"), 1)
    )
    impostor.rename(renamed)
    created = await stack.files.create(session, file_request(renamed))
    await stack.files.receive(session, created.id, chunks(renamed.read_bytes()), None)
    with pytest.raises(DomainError) as refused:
        await stack.files.complete(session, created.id)
    assert (refused.value.kind, refused.value.slug) == (Kind.INVALID, "invalid-distribution")


async def test_a_complete_retried_after_its_answer_was_lost_answers_the_same(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-W12
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    upload = await stack.files.create(session, file_request(wheel))
    await stack.files.receive(session, upload.id, chunks(wheel.read_bytes()), None)
    first, done = await stack.files.complete(session, upload.id)
    again, done_again = await stack.files.complete(session, upload.id)
    assert (done, done_again) == (True, True)
    assert again.status == first.status == FileState.COMPLETED


async def test_overlapping_posts_of_one_part_leave_one_object(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-W12: a retry overlapping its first attempt is answered with the bytes
    session, _ = await stack.sessions.create(project, "1.0", "config:alice")
    created = await stack.files.create(session, file_request(wheel))
    data = wheel.read_bytes()
    sent = await asyncio.gather(
        *(stack.files.receive(session, created.id, chunks(data), len(data)) for _ in range(4)),
        return_exceptions=True,
    )
    # Each read the pending upload before any committed: the first to commit wins, the
    # others meet the same bytes committed and are answered with them.
    assert all(isinstance(one, FileUpload) for one in sent), sent
    digests = {one.committed.digests["sha256"] for one in sent if isinstance(one, FileUpload)}
    assert digests == {hashlib.sha256(data).hexdigest()}
    assert len([k for k in stack.blobs.objects if k.endswith(".data")]) == 1
    other = bytes(reversed(data))  # as long, other digests (checked at completion only)
    # Other bytes racing these: one wins, the other is superseded; one object either way.
    raced = await asyncio.gather(
        stack.files.receive(session, created.id, chunks(other), len(other)),
        stack.files.receive(session, created.id, chunks(data), len(data)),
        return_exceptions=True,
    )
    won = [one for one in raced if isinstance(one, FileUpload)]
    assert len(won) >= 1, raced
    refused = [one for one in raced if not isinstance(one, FileUpload)]
    assert all(isinstance(one, DomainError) for one in refused), raced
    assert all(one.slug == "upload-superseded" for one in refused if isinstance(one, DomainError))
    assert len([k for k in stack.blobs.objects if k.endswith(".data")]) == 1
    held = (await stack.files.get(session.id, created.id)).committed
    assert held is not None
    assert held.digests["sha256"] in {hashlib.sha256(body).hexdigest() for body in (data, other)}
