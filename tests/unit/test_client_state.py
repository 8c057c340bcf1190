"""The client's local session ids and their state file."""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from pathlib import Path

import pytest

from gateway.client.cli.publish_files import Completions
from gateway.client.state import (
    SessionRecord,
    StateError,
    StateFile,
    default_state_file,
    local_id,
)


def record(url: str, **extra: str) -> SessionRecord:
    return SessionRecord(
        id=local_id(url),
        session_url=url,
        repository_url="https://up.example/upload/2.0/",
        name="foo",
        version="1.0",
        **extra,
    )


def test_default_location_follows_xdg_and_can_be_overridden() -> None:
    assert default_state_file({"XDG_STATE_HOME": "/s"}) == Path("/s/upload-gateway/sessions.json")
    assert default_state_file({"UPLOAD_GATEWAY_STATE_FILE": "/x.json", "XDG_STATE_HOME": "/s"}) == (
        Path("/x.json")
    )
    assert default_state_file({}).parts[-4:] == (
        ".local",
        "state",
        "upload-gateway",
        "sessions.json",
    )


def test_ids_are_short_and_stable() -> None:
    assert local_id("https://a/sessions/1") == local_id("https://a/sessions/1")
    assert local_id("https://a/sessions/1") != local_id("https://a/sessions/2")
    assert len(local_id("https://a/sessions/1")) == 8


def test_save_get_update(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "deep" / "sessions.json")
    assert state.records() == {}
    first = state.save(record("https://up.example/upload/2.0/sessions/aaa", stage_url="https://s/"))
    state.save(record("https://up.example/upload/2.0/sessions/bbb"))
    assert state.get(first.id).stage_url == "https://s/"
    assert state.get(first.id[:5]).id == first.id  # a unique prefix
    assert state.get(first.session_url).id == first.id  # or the session URL
    state.update(first.id, status="published")
    assert StateFile(state.path).get(first.id).status == "published"
    mode = stat.S_IMODE(state.path.stat().st_mode)
    assert mode == 0o600  # session URLs carry the session token
    with pytest.raises(StateError, match="no session"):
        state.get("zzzzzzzz")
    with pytest.raises(StateError, match="ambiguous"):
        state.get("")


def test_old_ended_sessions_are_pruned(tmp_path: Path) -> None:
    state = StateFile(tmp_path / "sessions.json")
    ended = record("https://u/sessions/old", status="published")
    ended_open = record("https://u/sessions/open-old", status="open")
    state.save(ended)
    state.save(ended_open)
    document = json.loads(state.path.read_text())
    for key in document["sessions"]:
        document["sessions"][key]["updated_at"] = "2000-01-01T00:00:00Z"
    state.path.write_text(json.dumps(document))
    state.save(record("https://u/sessions/new"))
    assert set(state.records()) == {ended_open.id, local_id("https://u/sessions/new")}


def test_a_corrupt_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    path.write_text("[]")
    with pytest.raises(StateError, match="not a session state file"):
        StateFile(path).records()


class CountingStateFile(StateFile):
    """A state file counting its completion writes (each rewrites the whole file)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[int] = []

    def mark_completed(self, session_id: str, files: Mapping[str, str]) -> None:
        self.writes.append(len(files))
        super().mark_completed(session_id, files)


def test_completions_are_written_in_batches_and_at_the_end(tmp_path: Path) -> None:
    state = CountingStateFile(tmp_path / "sessions.json")
    saved = state.save(record("https://u/sessions/many"))
    names = [f"foo-1.0-py3-none-manylinux_2_{n}_x86_64.whl" for n in range(400)]
    with Completions(state, saved.id, every=3600) as completions:
        for name in names:
            completions.add(name, name[-20:])
    # One rewrite of the state file for the 400 completions, not one each.
    assert state.writes == [400]
    assert StateFile(state.path).get(saved.id).completed[names[7]] == names[7][-20:]
