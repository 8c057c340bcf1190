"""Summary entries written where an older gateway writes them (``keys.older_file_summaries``),
as an older replica does during a rolling upgrade: what decides reads them too (the publish's
check, the write that ends a session), and so does the status of a session an older gateway
created; the status of a session created since reads only its one listing."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.domain.states import FileState, SessionState
from gateway.store import keys
from gateway.store.memory import MemoryRecordStore
from tests.fast.conftest import ALICE, Stack, upload


def move_to_older_layout(records: MemoryRecordStore, sid: str) -> list[str]:
    """Every summary entry of ``sid`` moved where an older gateway writes them; their keys."""
    beside, older = keys.file_summaries(sid), keys.older_file_summaries(sid)
    moved = []
    for key in [key for key in records.objects if key.startswith(beside)]:
        records.objects[older + key[len(beside) :]] = records.objects.pop(key)
        moved.append(older + key[len(beside) :])
    return moved


async def test_the_status_of_a_session_from_an_older_gateway_reads_both_layouts(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    move_to_older_layout(stack.records, session.id)
    status = await stack.status.read(session.id)
    assert await stack.status.files(status) == {}, "a new session's status lists one place"
    # As an older gateway rewrites the record: without the field it does not know.
    await stack.records.update(
        keys.session(session.id),
        lambda data: {k: v for k, v in data.items() if k != "summaries_beside"},
    )
    status = await stack.status.read(session.id)
    assert not status.session.summaries_beside
    [shown] = (await stack.status.files(status)).values()
    assert (shown.filename, shown.status) == (wheel.name, FileState.COMPLETED)


async def test_the_end_of_a_session_folds_entries_of_both_layouts(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    created = await upload(stack, session, wheel)
    move_to_older_layout(stack.records, session.id)
    canceled = await stack.sessions.cancel(session.id)
    assert canceled.files is not None
    assert canceled.files[created.id].status == FileState.COMPLETED


async def test_the_publish_checks_entries_of_both_layouts(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    moved = move_to_older_layout(stack.records, session.id)
    # A newer revision of the file, summarised by an older replica after the publish's read.
    entry = max(moved, key=lambda key: (keys.file_summary_fields(key) or ("", 0))[1])
    fields = keys.file_summary_fields(entry)
    assert fields is not None
    fid, revision, created_us, _, notices, filename = fields
    newer = (fid, revision + 1, created_us, "pending", notices, filename)
    newer_key = keys.older_file_summaries(session.id) + keys.file_summary("", newer).split("/")[-1]
    stack.records.objects[newer_key] = stack.records.objects[entry]
    with pytest.raises(Exception, match="changed while the publish started"):
        await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    del stack.records.objects[newer_key]
    published = await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    assert published.status == SessionState.PUBLISHED
