"""Publishing over the in-memory stores and a loopback index: state transitions, the journal,
reservations, lease takeover (R-P7, R-P8, R-P9, R-W2, R-W3)."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.domain import clock
from gateway.domain.errors import DomainError, Kind
from gateway.domain.lease import lapsed
from gateway.domain.records import FilenameReservation, PublishingSession, PublishJournal
from gateway.domain.states import SessionState
from gateway.publish.journal import Journals
from gateway.store import keys
from gateway.store.record_store import RecordChanged
from gateway.store.typed import Records
from tests.distributions import build_sdist, build_wheel
from tests.fast.conftest import ALICE, BOB, MakeStack, Stack, file_request, upload


async def reservation(stack: Stack, project: str, filename: str) -> FilenameReservation | None:
    records = Records(stack.records, FilenameReservation)
    return await records.load(keys.filename_reservation(project, filename))


async def test_publish_puts_every_file_on_the_index(
    stack: Stack, project: str, wheel: Path, tmp_path: Path
) -> None:  # R-P7, R-W3
    sdist = build_sdist(tmp_path, project, "1.0")
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, sdist)
    await upload(stack, session, wheel)
    published = await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    assert published.status == SessionState.PUBLISHED
    assert published.publish is None
    assert published.settled
    assert stack.index.files[project] == {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in (wheel, sdist)
    }
    # The reservation stays as the publish created it: the session tells it was published.
    held = await reservation(stack, project, wheel.name)
    assert held is not None
    assert (held.session_id, held.state) == (session.id, "publishing")
    assert not [key for key in stack.blobs.objects if key.startswith(keys.session_data(session.id))]


async def test_a_file_on_the_index_with_other_bytes_refuses_the_publish(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-P9
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    # Uploaded to the index directly after the file was staged.
    stack.index.files[project] = {wheel.name: "0" * 64}
    with pytest.raises(DomainError) as refused:
        await stack.publisher.publish(session, ALICE)
    assert (refused.value.kind, refused.value.slug) == (Kind.CONFLICT, "filename-conflict")
    assert refused.value.errors[0].source == f"files.{wheel.name}"
    assert (await stack.sessions.get(session.id)).status == SessionState.OPEN
    assert await reservation(stack, project, wheel.name) is None


async def test_a_reserved_filename_refuses_another_session(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-P8
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    await stack.names.reserve_filenames(project, [wheel.name], "another-session")
    with pytest.raises(DomainError) as refused:
        await stack.publisher.publish(session, ALICE)
    assert refused.value.slug == "filename-conflict"
    assert (await stack.sessions.get(session.id)).publish is None


async def test_an_index_failing_while_the_caller_waits_leaves_the_session_open(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-P7
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    stack.index.failures = 10
    with pytest.raises(DomainError) as refused:
        await stack.publisher.publish(session, ALICE)
    assert (refused.value.kind, refused.value.retry_after) == (Kind.UNAVAILABLE, 2)
    after = await stack.sessions.get(session.id)
    assert (after.status, after.publish) == (SessionState.OPEN, None)
    assert await reservation(stack, project, wheel.name) is None
    stack.index.failures = 0
    assert (await stack.publisher.publish(after, ALICE)).status == SessionState.PUBLISHED


async def test_a_failed_publish_keeps_the_reservations_of_the_files_it_posted(
    stack: Stack, project: str, wheel: Path, tmp_path: Path
) -> None:  # R-P8
    sdist = build_sdist(tmp_path, project, "1.0")
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, sdist)
    await upload(stack, session, wheel)
    stack.index.refused = {sdist.name}  # the wheel goes first and lands; the sdist does not
    with pytest.raises(DomainError) as refused:
        await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    assert refused.value.slug == "backend-rejected"
    assert list(stack.index.files[project]) == [wheel.name]
    failed = await stack.sessions.get(session.id)
    assert (failed.status, failed.maybe_on_index) == (SessionState.OPEN, [wheel.name])
    held = await reservation(stack, project, wheel.name)
    assert held is not None
    assert held.session_id == session.id
    assert await reservation(stack, project, sdist.name) is None
    # Nor does the session ending release it: no other session may replace the wheel.
    await stack.sessions.cancel(session.id)
    assert (await stack.sessions.get(session.id)).settled
    assert await reservation(stack, project, wheel.name) == held
    assert await reservation(stack, project, sdist.name) is None
    other = await stack.names.reserve_filenames(project, [sdist.name, wheel.name], "other")
    assert other.taken == wheel.name
    assert await reservation(stack, project, sdist.name) is None, "none reserved, or all"


async def test_a_taken_over_publish_that_fails_keeps_what_the_index_lists(
    stack: Stack, project: str, wheel: Path, tmp_path: Path
) -> None:  # R-P8
    sdist = build_sdist(tmp_path, project, "1.0")
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    files = [await upload(stack, session, wheel), await upload(stack, session, sdist)]
    # A pass-through caller's publish whose worker died after posting the wheel, before
    # journaling it: nobody else has the caller's credentials to finish it.
    dead = PublishJournal(
        attempt="abandoned",
        owner="dead-replica",
        lease_until=lapsed("dead-replica").until or clock.now(),
        order=[file.id for file in files],
        published_by=ALICE.id,
        credential="caller",
    )
    await stack.journals.open_in_session(session.id, dead)
    await stack.names.reserve_filenames(project, [wheel.name, sdist.name], session.id)
    stack.index.files[project] = {wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest()}
    await stack.sweeper.sweep()
    await stack.settle()
    failed = await stack.sessions.get(session.id)
    assert failed.publish is None
    assert failed.maybe_on_index == [wheel.name]
    assert await reservation(stack, project, wheel.name) is not None
    assert await reservation(stack, project, sdist.name) is None


async def test_a_deferred_publish_fails_into_error(
    make_stack: MakeStack, project: str, wheel: Path
) -> None:
    stack = await make_stack(publish={"sync_wait": 0})
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    stack.index.failures = 10
    processing = await stack.publisher.publish(session, ALICE)
    assert processing.status == SessionState.PROCESSING
    await stack.settle()
    failed = await stack.sessions.get(session.id)
    assert failed.status == SessionState.ERROR
    assert failed.notices[-1].startswith("Publishing failed: ")
    [file] = await stack.session_files.records(session.id)
    assert file.notices, "the file the index refused says why"


async def abandoned_publish(
    stack: Stack, project: str, wheel: Path, attempt: str
) -> PublishingSession:
    """A session of ``wheel`` whose publish ``attempt`` a replica began and died in: its
    journal is open and its lease has run out."""
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    file = await upload(stack, session, wheel)
    dead = PublishJournal(
        attempt=attempt,
        owner="dead-replica",
        lease_until=lapsed("dead-replica").until or clock.now(),
        order=[file.id],
        published_by=ALICE.id,
    )
    await stack.journals.open_in_session(session.id, dead)
    return session


async def test_a_lapsed_journal_is_taken_over_by_the_sweep(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-W2
    # As if another replica started the publish and died: its lease has run out.
    session = await abandoned_publish(stack, project, wheel, "abandoned")
    await stack.names.reserve_filenames(project, [wheel.name], session.id)
    await stack.sweeper.sweep()
    taken = await stack.sessions.get(session.id)
    assert taken.status in (SessionState.PROCESSING, SessionState.PUBLISHED)
    await stack.settle()
    assert (await stack.sessions.get(session.id)).status == SessionState.PUBLISHED
    assert list(stack.index.files[project]) == [wheel.name]


async def test_a_resumed_publish_reserves_its_filenames_again(
    stack: Stack, project: str, wheel: Path
) -> None:  # R-P8
    # The publish request released the reservations as the journal was opened (the write
    # landed, its answer did not), and the journal's worker died: nothing marks them at the
    # end any more, so the resumed run reserves them before it posts.
    session = await abandoned_publish(stack, project, wheel, "unanswered")
    await stack.sweeper.sweep()
    await stack.settle()
    assert (await stack.sessions.get(session.id)).status == SessionState.PUBLISHED
    held = await reservation(stack, project, wheel.name)
    assert held is not None
    assert held.session_id == session.id


async def test_a_live_journal_is_left_to_its_holder(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    file = await upload(stack, session, wheel)
    other = Journals(stack.records, stack.due, stack.session_files, 60)  # another replica's
    journal = other.new_attempt([file.id], None, ALICE.id, "service")
    await stack.journals.open_in_session(session.id, journal)
    await stack.sweeper.sweep()
    await stack.settle()
    assert stack.index.uploads == 0
    assert (await stack.sessions.get(session.id)).publish == journal
    # Whoever does not hold the lease cannot write the journal.
    with pytest.raises(RecordChanged):
        await stack.journals.confirm(session.id, journal.attempt, [wheel.name])
    await other.confirm(session.id, journal.attempt, [wheel.name])


async def test_a_first_release_registers_the_name(stack: Stack, project: str, wheel: Path) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await stack.names.reserve(project, ALICE.id, session.id)
    await upload(stack, session, wheel)
    await stack.publisher.publish(session, ALICE)
    with pytest.raises(DomainError) as refused:
        await stack.names.check(project, BOB.id)
    assert refused.value.kind is Kind.FORBIDDEN
    await stack.names.check(project, ALICE.id)


async def test_publishing_needs_every_file_completed(
    stack: Stack, project: str, wheel: Path
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await stack.files.create(session, file_request(wheel))
    with pytest.raises(DomainError) as refused:
        await stack.publisher.publish(session, ALICE)
    assert refused.value.slug == "files-not-completed"


async def test_a_publish_that_dies_after_its_last_upload_is_finished_without_a_second(
    stack: Stack, project: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # R-W2, R-W3
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, build_sdist(tmp_path, project, "1.0"))
    await upload(stack, session, build_wheel(tmp_path, project, "1.0"))

    async def die(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the process died")

    # Both files are on the index; the process dies before the publish's end is written.
    monkeypatch.setattr(stack.journals, "finish", die)
    with pytest.raises(ConnectionError):
        await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    monkeypatch.undo()
    assert stack.index.uploads == 2
    journal = (await stack.sessions.get(session.id)).publish
    assert journal is not None
    # Entries come in batches, at most one a second (a quick run writes none): a lost entry
    # costs nothing, since the resumed run finds the file on the index with its sha256.
    assert journal.confirmed == []
    later = journal.lease_until + timedelta(seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    await stack.sweeper.sweep()
    await stack.settle()
    published = await stack.sessions.get(session.id)
    assert (published.status, published.settled) == (SessionState.PUBLISHED, True)
    assert stack.index.uploads == 2, "the resumed run found both files on the index"


async def test_a_worker_whose_publish_was_taken_over_does_not_finish_it(
    stack: Stack, project: str, wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # R-W2
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)
    other = Journals(stack.records, stack.due, stack.session_files, 60)  # another replica's

    async def stall_after_put() -> None:
        """The upload outlasts the lease (renewals failing): another replica takes over."""
        stalled = await stack.sessions.get(session.id)
        assert stalled.publish is not None
        later = stalled.publish.lease_until + timedelta(seconds=1)
        monkeypatch.setattr(clock, "now", lambda: later)
        assert await other.take_over(stalled) is not None

    stack.index.after_upload = stall_after_put
    with pytest.raises(RecordChanged):
        await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    # Nothing only the holder may do was done: the new holder finishes the publish.
    held = await reservation(stack, project, wheel.name)
    assert held is not None
    assert held.state == "publishing"
    taken = await stack.sessions.get(session.id)
    assert taken.publish is not None
    assert taken.publish.owner == other.holder
    assert taken.status == SessionState.PROCESSING


async def test_a_published_session_whose_settle_died_is_settled_by_the_sweep(
    stack: Stack, project: str, wheel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, _ = await stack.sessions.create(project, "1.0", ALICE.id)
    await upload(stack, session, wheel)

    async def die(*args: object, **kwargs: object) -> None:
        raise ConnectionError("the process died")

    monkeypatch.setattr(stack.sessions, "settle", die)
    with pytest.raises(ConnectionError):
        await stack.publisher.publish(await stack.sessions.get(session.id), ALICE)
    monkeypatch.undo()
    ended = await stack.sessions.get(session.id)
    assert (ended.status, ended.settled) == (SessionState.PUBLISHED, False)
    # The publish lease's entry comes when the lease would have lapsed, at the latest.
    later = clock.now() + timedelta(seconds=stack.settings.publish.lease + 1)
    monkeypatch.setattr(clock, "now", lambda: later)
    await stack.sweeper.sweep()
    settled = await stack.sessions.get(session.id)
    assert settled.settled
    assert await stack.records.get(keys.live_release(project, "1.0")) is None
    assert await stack.records.get(keys.open_session(ALICE.id, session.id)) is None
