"""Hostile input gets a clear 4xx problem and changes nothing (issue: reliability)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.settings import Settings
from gateway.store import keys
from gateway.store.record_store import RecordStore
from tests.conftest import ALICE, BOB
from tests.distributions import build_wheel
from tests.integration.conftest import META, Api, make_api, problem


async def test_deeply_nested_json_is_400(client: TestClient, settings: Settings) -> None:
    body = b'{"meta": {"api-version": "2.0"}, "name": ' + b"[" * 30000 + b"]" * 30000 + b"}"
    response = await client.post(
        settings.server.api_root,
        data=body,
        headers={"Authorization": ALICE.authorization, "Content-Type": UPLOAD_V2_JSON},
    )
    await problem(response, 400)


@pytest.mark.parametrize(
    "name",
    ["nul\x00byte", "ünïcode", "a" * 5000, "../../etc", "name/with/slash", "", " ", "\u202e"],
)
async def test_odd_project_names_are_400(api: Api, name: str) -> None:
    await problem(await api.post_json(api.root, {"meta": META, "name": name, "version": "1"}), 400)


@pytest.mark.parametrize(
    "filename",
    [
        "proj\x00-1.0.tar.gz",
        "pröj-1.0-py3-none-any.whl",
        "../proj-1.0.tar.gz",
        "/abs/proj-1.0.tar.gz",
        "proj-1.0-py3-none-any.whl\n",
        "C:\\proj-1.0.tar.gz",
        "x" * 3000 + ".whl",
    ],
)
async def test_odd_filenames_are_400(api: Api, project_name: str, filename: str) -> None:
    session = await api.create_session(project_name)
    response = await api.start_file(session, filename.replace("proj", project_name), b"x")
    await problem(response, 400)
    assert (await api.status(session["links"]["session"]))["files"] == {}


async def test_files_per_session_are_capped(
    aiohttp_client, make_settings, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(uploads={"max_files_per_session": 2})
    api = await make_api(aiohttp_client, settings)
    session = await api.create_session(project_name)
    tags = ["py2-none-any", "py3-none-any", "cp312-cp312-manylinux_2_28_x86_64"]
    wheels = [build_wheel(tmp_path, project_name, "1.0", tag=tag) for tag in tags]
    for wheel in wheels[:2]:
        await api.create_file(session, wheel.name, wheel.read_bytes())
    document = await problem(await api.start_file(session, wheels[2].name, b"x"), 409)
    assert document["type"].endswith("too-many-files")


async def test_open_sessions_per_principal_are_capped(
    aiohttp_client, make_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(sessions={"max_open_per_principal": 2})
    api = await make_api(aiohttp_client, settings)
    first = await api.create_session(project_name, "1.0")
    await api.create_session(project_name, "2.0")
    over = await api.post_json(api.root, {"meta": META, "name": project_name, "version": "3.0"})
    document = await problem(over, 429)
    assert document["type"].endswith("too-many-sessions")
    # Asking again for a release already open is not a new session and is not refused.
    again = await api.post_json(api.root, {"meta": META, "name": project_name, "version": "2.0"})
    assert again.status == 409
    # The cap is per principal.
    bob = await api.post_json(
        api.root, {"meta": META, "name": "bob-" + project_name, "version": "1.0"}, BOB.authorization
    )
    assert bob.status == 201
    # An ended session no longer counts.
    assert (await api.delete(first["links"]["session"])).status == 204
    await api.create_session(project_name, "3.0")


async def test_a_marker_left_by_a_crash_does_not_hold_the_quota(
    aiohttp_client,
    make_settings,
    project_name: str,
    bucket_records: RecordStore,
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(sessions={"max_open_per_principal": 1})
    api = await make_api(aiohttp_client, settings)
    crashed = await api.create_session(project_name, "1.0")
    session_key = keys.session(crashed["session-token"])

    def end_without_cleanup(data: dict) -> dict:  # as if the process died right after
        return {**data, "status": "canceled", "ended_at": data["created_at"]}

    stored = await bucket_records.update(session_key, end_without_cleanup)
    creator = stored.data["created_by"]
    fresh = await api.create_session(project_name, "2.0")
    markers = [key async for key in bucket_records.keys(keys.open_sessions(creator))]
    assert markers == [keys.open_session(creator, fresh["session-token"])]


async def test_guessed_stage_tokens_all_look_alike(api: Api, project_name: str) -> None:
    await api.create_session(project_name)
    answers = set()
    for token in ["A" * 43, "short", "x" * 200, "a-b_c" * 8, "ZZZZ", "%00"]:
        response = await api.client.get(f"/stage/{token}/")
        answers.add((response.status, await response.text()))
    assert len(answers) == 1
    assert next(iter(answers))[0] == 404
