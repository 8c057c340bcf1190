"""Staged legacy uploads (R-W6): the session a principal's uploads of a release go into, and
what finding it costs per file (R-W13)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gateway.domain.errors import DomainError
from gateway.domain.states import FileState, SessionState
from gateway.services.legacy_staging import LegacyStaging, StagedForm
from tests.distributions import build_wheel
from tests.fast.conftest import ALICE, BOB, Stack, chunks


def _form(path: Path, project: str) -> StagedForm:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return StagedForm(project, "1.0", path.name, {"sha256": digest})


async def _stage(staging: LegacyStaging, principal: str, path: Path, project: str) -> str:
    session, upload = await staging.stage(
        principal, _form(path, project), chunks(path.read_bytes())
    )
    assert upload.status == FileState.COMPLETED
    return session.id


def _wheels(tmp_path: Path, project: str, count: int) -> list[Path]:
    return [
        build_wheel(tmp_path, project, "1.0", tag=f"py3-none-manylinux_2_{n}_x86_64")
        for n in range(count)
    ]


async def test_later_uploads_join_the_session_without_creating_one(
    stack: Stack, project: str, tmp_path: Path
) -> None:  # R-W6, R-W13
    staging = LegacyStaging(stack.sessions, stack.files, stack.names, stack.gates.attestations)
    first, second, third = _wheels(tmp_path, project, 3)
    sid = await _stage(staging, ALICE.id, first, project)
    writes = stack.records.writes
    assert await _stage(staging, ALICE.id, second, project) == sid
    # The file record (created, completed), its claim, its summary entry: no session record
    # created and dropped, no due entry.
    assert stack.records.writes - writes == 4
    listed = await stack.session_files.listed(await stack.sessions.get(sid))
    assert sorted(listed) == sorted([first.name, second.name])
    await stack.sessions.cancel(sid)
    again = await _stage(staging, ALICE.id, third, project)
    assert again != sid, "a canceled session is never joined: the release gets a new one"
    assert (await stack.sessions.get(sid)).status == SessionState.CANCELED


async def test_another_principal_goes_through_the_name_checks(
    stack: Stack, project: str, tmp_path: Path
) -> None:  # R-W6, R-P4
    staging = LegacyStaging(stack.sessions, stack.files, stack.names, stack.gates.attestations)
    first, second = _wheels(tmp_path, project, 2)
    await _stage(staging, ALICE.id, first, project)
    with pytest.raises(DomainError, match="reserved for another publisher"):
        await _stage(staging, BOB.id, second, project)
