"""Approvals (R-W11, python/peps#5070): N distinct approvers, never the uploader, against real
SeaweedFS and pypiserver; changing a file withdraws them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.hashed_secrets import hash_secret
from gateway.settings import Settings
from tests.conftest import ALICE, BOB, TOKEN, User
from tests.distributions import build_wheel
from tests.integration.cli import Cli
from tests.integration.conftest import META, Api, make_api, problem

CAROL = User("carol", "carol-password", ())
DAVE = User("dave", "dave-password", ())


@pytest.fixture(scope="module")
def approvers() -> list[dict[str, object]]:
    """Two principals who may approve every project and upload none; alice may approve too
    (so that being the uploader is what refuses her)."""
    return [
        {"name": u.name, "password_hash": hash_secret(u.password), "projects": [], "approve": ["*"]}
        for u in (CAROL, DAVE)
    ]


@pytest.fixture
async def gated(aiohttp_client, make_settings, principal_settings, approvers, project_name):  # type: ignore[no-untyped-def]
    principals = [
        {**p, "approve": ["*"]} if p["name"] == ALICE.name else p for p in principal_settings
    ]
    settings: Settings = make_settings(
        auth={"principals": principals + approvers},
        policy={
            "projects": [{"match": project_name, "approvals": 2, "cancel_requires": "approver"}]
        },
    )
    return await make_api(aiohttp_client, settings)


async def approve(api: Api, session: dict[str, Any], user: User) -> Any:
    url = session["links"]["session"] + "/approve"
    return await api.post_json(url, {"meta": META}, authorization=user.authorization)


async def test_two_approvers_other_than_the_uploader_let_publish_through(  # type: ignore[no-untyped-def]
    gated, project_name: str, tmp_path: Path
) -> None:
    api: Api = gated
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    session = await api.create_session(project_name)
    completed = await api.upload(session, build_wheel(tmp_path / "a", project_name, "1.0"))
    document = await problem(await api.publish(session), 409)
    assert document["errors"] == [
        {"source": "approvals", "message": "0 of 2 approvals (approved by: nobody yet)"}
    ]
    uploader = await problem(await approve(api, session, ALICE), 403)
    assert uploader["type"].endswith("uploader-cannot-approve")
    outsider = await problem(await approve(api, session, BOB), 403)
    assert outsider["type"].endswith("not-an-approver")

    response = await approve(api, session, CAROL)
    assert response.status == 200, await response.text()
    body = await response.json(content_type=None)
    assert [a["principal"] for a in body["approvals"]] == ["config:carol"]
    assert body["required"] == 2
    document = await problem(await api.publish(session), 409)
    assert "1 of 2 approvals (approved by: config:carol)" in document["detail"]
    assert (await approve(api, session, DAVE)).status == 200

    # Replacing the file withdraws both approvals (python/peps#5070).
    assert (await api.delete(completed["links"]["file-upload-session"])).status == 204
    await api.upload(session, build_wheel(tmp_path / "b", project_name, "1.0", summary="new"))
    document = await problem(await api.publish(session), 409)
    assert "0 of 2 approvals" in document["detail"]

    for approver in (CAROL, DAVE):
        assert (await approve(api, session, approver)).status == 200
    response = await api.publish(session)
    assert response.status in (201, 202), await response.text()
    for _ in range(100):
        if (await api.status(session["links"]["session"]))["status"] == "published":
            return
        await asyncio.sleep(0.1)
    pytest.fail("the approved release was not published")


async def test_only_an_approver_may_cancel_when_the_policy_says_so(  # type: ignore[no-untyped-def]
    gated, project_name: str
) -> None:
    api: Api = gated
    ci = f"Bearer {TOKEN}"  # may upload every project, approve none
    response = await api.post_json(
        api.root, {"meta": META, "name": project_name, "version": "1.0"}, authorization=ci
    )
    assert response.status == 201, await response.text()
    url = api.path(response.headers["Location"])
    document = await problem(await api.client.delete(url, headers={"Authorization": ci}), 403)
    assert document["type"].endswith("cancel-requires-approver")
    refused = await api.client.delete(url, headers={"Authorization": BOB.authorization})
    await problem(refused, 403)
    canceled = await api.client.delete(url, headers={"Authorization": CAROL.authorization})
    assert canceled.status == 204, await canceled.text()


@pytest.fixture
async def live(live_gateway, principal_settings, approvers, project_name) -> Api:  # type: ignore[no-untyped-def]
    """A gateway on a real port (for the CLI) with the approvers and the policy."""
    return await live_gateway(  # type: ignore[no-any-return]
        auth={"principals": principal_settings + approvers},
        policy={"projects": [{"match": project_name, "approvals": 1}]},
    )


async def test_the_cli_approves_a_release(  # type: ignore[no-untyped-def]
    live: Api, cli: Cli, project_name: str, tmp_path: Path
) -> None:
    session = await live.create_session(project_name)
    await live.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    url = session["links"]["session"]
    code, _, err = await cli.run("session", "approve", url, "-u", "alice", "-p", ALICE.password)
    assert code != 0
    assert f"You may not approve {project_name} releases" in err  # alice uploads only
    code, out, err = await cli.run("session", "approve", url, "-u", "carol", "-p", CAROL.password)
    assert code == 0, err
    assert "Approved session" in out
    response = await live.publish(session)
    assert response.status in (201, 202), await response.text()


async def test_status_shows_who_approved_and_what_is_missing(  # type: ignore[no-untyped-def]
    gated, project_name: str, tmp_path: Path
) -> None:
    api: Api = gated
    session = await api.create_session(project_name)
    await api.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    status = await api.status(session["links"]["session"])
    assert status["gates"] == {
        "approvals-required": 2,
        "approved-by": [],
        "missing": [
            {"source": "approvals", "message": "0 of 2 approvals (approved by: nobody yet)"}
        ],
    }
    assert (await approve(api, session, CAROL)).status == 200
    # An approver without upload rights reads the status too (R-W11).
    url = api.path(session["links"]["session"])
    response = await api.client.get(url, headers={"Authorization": DAVE.authorization})
    gates = (await response.json(content_type=None))["gates"]
    assert [a["principal"] for a in gates["approved-by"]] == ["config:carol"]
    assert gates["missing"] == [
        {"source": "approvals", "message": "1 of 2 approvals (approved by: config:carol)"}
    ]


async def test_an_approver_without_upload_rights_approves_by_release(  # type: ignore[no-untyped-def]
    live: Api, cli: Cli, project_name: str, tmp_path: Path
) -> None:
    session = await live.create_session(project_name)
    await live.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    release = f"{project_name}==1.0"
    carol = ("-u", "carol", "-p", CAROL.password, "--repository-url", live.base + live.root)
    code, out, err = await cli.run("session", "approve", release, *carol)
    assert code == 0, err
    assert "Approved session" in out
    assert "approvals: 1 of 1 (approved by: config:carol)" in out
    status = await live.status(session["links"]["session"])
    assert status["gates"]["missing"] == []
    code, _, err = await cli.run("session", "approve", f"{project_name}==2.0", *carol)
    assert code != 0  # no session: nothing is created for the lookup
    assert "not found" in err.lower(), err
    response = await live.publish(session)
    assert response.status in (201, 202), await response.text()
