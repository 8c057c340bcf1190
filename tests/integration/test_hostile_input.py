"""Hostile input gets a clear 4xx problem and changes nothing (issue: reliability)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.settings import Settings
from tests.conftest import ALICE
from tests.distributions import build_wheel
from tests.integration.conftest import META, Api, problem


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
    api = Api(
        await aiohttp_client(create_app(settings, run_sweeper=False)), settings, ALICE.authorization
    )
    session = await api.create_session(project_name)
    tags = ["py2-none-any", "py3-none-any", "cp312-cp312-manylinux_2_28_x86_64"]
    wheels = [build_wheel(tmp_path, project_name, "1.0", tag=tag) for tag in tags]
    for wheel in wheels[:2]:
        await api.create_file(session, wheel.name, wheel.read_bytes())
    document = await problem(await api.start_file(session, wheels[2].name, b"x"), 409)
    assert document["type"].endswith("too-many-files")


async def test_guessed_stage_tokens_all_look_alike(api: Api, project_name: str) -> None:
    await api.create_session(project_name)
    answers = set()
    for token in ["A" * 43, "short", "x" * 200, "a-b_c" * 8, "ZZZZ", "%00"]:
        response = await api.client.get(f"/stage/{token}/")
        answers.add((response.status, await response.text()))
    assert len(answers) == 1
    assert next(iter(answers))[0] == 404
