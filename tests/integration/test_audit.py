"""The audit journal (issue #19) against real SeaweedFS and pypiserver: one event per action
with the right fields for each way in (Upload 2.0 API, legacy pass-through, OIDC), no secret in
any stored object, S3 failures fail the action, replicas lose nothing, the reader paginates and
refuses principals without the ``audit`` permission."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.api.context import SERVICES
from gateway.app_keys import S3_CLIENT
from gateway.devstack import Server
from gateway.domain import clock
from gateway.domain.records import PublishJournal
from gateway.hashed_secrets import hash_secret
from gateway.settings import Settings
from gateway.store import keys
from tests.conftest import ALICE, BOB, INDEX_PASSWORD, INDEX_USER, TOKEN, twine_upload_async
from tests.distributions import build_wheel, sha256_of
from tests.faults import FaultProxy
from tests.integration.conftest import META, Api, assert_consistent, make_api, problem
from tests.integration.oidc import AUDIENCE, ISSUER, Issuer, serve_jwks
from tests.integration.replicas import create_session

AUDITOR_PASSWORD = "auditor-password-5c1e"
AUDITOR = "Basic " + base64.b64encode(f"auditor:{AUDITOR_PASSWORD}".encode()).decode()
WRONG = "Basic " + base64.b64encode(b"alice:wrong-password-77f0").decode()


@pytest.fixture(scope="module")
def auditor() -> dict[str, object]:
    return {"name": "auditor", "password_hash": hash_secret(AUDITOR_PASSWORD), "audit": True}


@pytest.fixture
def audited_settings(make_settings, principal_settings, auditor):  # type: ignore[no-untyped-def]
    """``make_settings`` whose principals include one with the audit permission."""

    def make(**sections: dict[str, Any]) -> Settings:
        auth = {"principals": [*principal_settings, auditor], **sections.pop("auth", {})}
        return make_settings(auth=auth, **sections)  # type: ignore[no-any-return]

    return make


async def read_page(api: Api, authorization: str = AUDITOR, **query: str) -> aiohttp.ClientResponse:
    return await api.client.get(
        f"{api.root}audit", params=query, headers={"Authorization": authorization}
    )


async def journal(api: Api, limit: int = 1000, **query: str) -> list[dict[str, Any]]:
    """Every event the reader returns, following its cursors."""
    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        response = await read_page(api, limit=str(limit), **query, **extra)
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        page = await response.json()
        events += page["events"]
        cursor = page.get("next")
        if cursor is None:
            return events


async def stored_objects(api: Api) -> dict[str, bytes]:
    """Every audit object in the bucket, by key."""
    settings = api.client.app[SERVICES].settings
    client = api.client.app[S3_CLIENT]
    bucket = settings.audit.bucket or settings.s3.bucket
    found = {}
    paginator = client.get_paginator("list_objects_v2")
    async for page in paginator.paginate(Bucket=bucket, Prefix=settings.s3.prefix + keys.AUDIT):
        for item in page.get("Contents", []):
            answer = await client.get_object(Bucket=bucket, Key=item["Key"])
            async with answer["Body"] as body:
                found[item["Key"]] = await body.read()
    return found


def by_action(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event["action"], []).append(event)
    return grouped


async def assert_no_secret(api: Api, *secrets: str) -> None:
    objects = await stored_objects(api)
    assert objects
    for key, data in objects.items():
        for secret in secrets:
            assert secret.encode() not in data, f"{secret!r} in {key}"


# -- the Upload 2.0 API ---------------------------------------------------------------------


async def test_every_upload2_action_is_one_event_with_its_facts(
    aiohttp_client, audited_settings, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(aiohttp_client, audited_settings())
    hints = {"User-Agent": "audit-test/1.0", "X-Forwarded-For": "203.0.113.9"}
    response = await api.post_json(
        api.root,
        {"meta": META, "name": project_name, "version": "1.0"},
        **hints,
        **{"X-Request-ID": "create-1"},
    )
    assert response.status == 201
    session = await response.json(content_type=None)
    extend = await api.post_json(session["links"]["extend"], {"meta": META, "extend-for": 60})
    assert extend.status == 200
    wheel = build_wheel(tmp_path, project_name, "1.0")
    await api.upload(session, wheel)
    assert (await api.post_json(session["links"]["publish"], {"meta": META})).status == 201
    second = await api.create_session(project_name, "2.0")
    bad = await api.create_file(
        second, f"{project_name.replace('-', '_')}-2.0-py3-none-any.whl", b"not a zip"
    )
    await api.send_bytes(bad, b"not a zip")
    await problem(await api.complete(bad), 400)
    assert (await api.delete(second["links"]["session"])).status == 204
    wrong = await api.post_json(
        api.root, {"meta": META, "name": project_name, "version": "3"}, WRONG
    )
    await problem(wrong, 401)
    await problem(
        await api.post_json(
            api.root, {"meta": META, "name": project_name, "version": "3"}, BOB.authorization
        ),
        403,
    )
    anonymous = await api.client.post(api.root, json={"meta": META, "name": "x", "version": "1"})
    assert anonymous.status == 401

    events = await journal(api, project=project_name)
    times = [e["time"] for e in events]
    assert times == sorted(times, reverse=True)  # newest first
    actions = by_action(events)
    assert {a: len(e) for a, e in actions.items()} == {
        "session.created": 2,
        "session.extended": 1,
        "file.completed": 1,
        "name.registered": 1,
        "session.published": 1,
        "file.failed": 1,
        "session.canceled": 1,
        "permission.refused": 1,
    }
    created = actions["session.created"][-1]  # the older of the two
    assert created["version"] == "1.0"
    assert created["principal"] == {
        "id": "config:alice",
        "name": "alice",
        "kind": "config",
        "claims": {},
    }
    assert created["request_id"] == "create-1"
    assert created["user_agent"] == "audit-test/1.0"
    assert created["client_address"] == "127.0.0.1"  # no proxy is trusted by default
    assert created["outcome"] == "ok"
    assert created["session"] == session["session-token"][:8]
    digest = sha256_of(wheel)
    assert actions["file.completed"][0]["files"] == [{"filename": wheel.name, "sha256": digest}]
    published = actions["session.published"][0]
    assert published["files"] == [{"filename": wheel.name, "sha256": digest}]
    assert published["principal"]["id"] == "config:alice"
    assert published["version"] == "1.0"
    failed = actions["file.failed"][0]
    assert failed["outcome"] == "failed"
    assert failed["detail"]
    assert actions["session.canceled"][0]["version"] == "2.0"
    refused = actions["permission.refused"][0]
    assert refused["principal"]["id"] == "config:bob"
    assert refused["outcome"] == "refused"
    everything = await journal(api)
    auth_refused = [e for e in everything if e["action"] == "auth.refused"]
    assert len(auth_refused) == 1  # the wrong password; the anonymous request is not journaled
    assert "principal" not in auth_refused[0]
    assert auth_refused[0]["request_id"] == wrong.headers["X-Request-ID"]
    await assert_no_secret(
        api,
        ALICE.password,
        BOB.password,
        AUDITOR_PASSWORD,
        "wrong-password-77f0",
        INDEX_PASSWORD,
        session["session-token"],
        second["session-token"],
        ALICE.authorization.split()[1],
    )


async def test_client_address_comes_through_trusted_proxies_only(
    aiohttp_client, audited_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(
        aiohttp_client, audited_settings(server={"trusted_proxies": ["127.0.0.0/8", "10.0.0.0/8"]})
    )
    # The client claims a spoofed first hop; the proxies in front appended the rest.
    chain = "198.51.100.66, 203.0.113.9, 10.1.2.3"
    response = await api.post_json(
        api.root,
        {"meta": META, "name": project_name, "version": "1.0"},
        **{"X-Forwarded-For": chain},
    )
    assert response.status == 201
    [event] = await journal(api, project=project_name)
    assert event["client_address"] == "203.0.113.9"


async def test_expiry_is_journaled_once_however_many_replicas_see_it(
    aiohttp_client, audited_settings, project_name: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    moment = [clock.now()]
    monkeypatch.setattr(clock, "now", lambda: moment[0])
    settings = audited_settings(sessions={"lifetime": 60})
    first = await make_api(aiohttp_client, settings)
    second = await make_api(aiohttp_client, settings)
    created = await first.create_session(project_name)
    moment[0] += timedelta(seconds=61)
    await asyncio.gather(
        first.client.app[SERVICES].sweeper.sweep(), second.client.app[SERVICES].sweeper.sweep()
    )
    expired = by_action(await journal(first, project=project_name))["session.expired"]
    assert len(expired) == 1
    assert expired[0]["principal"]["kind"] == "gateway"
    assert expired[0]["session"] == created["session-token"][:8]
    assert expired[0]["detail"] == "created by config:alice"


async def test_a_publish_finished_by_two_replicas_is_journaled_once(
    aiohttp_client, audited_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]  # R-W8, R-W12
    # A holder whose lease lapsed under load may finish the publish its successor finishes
    # too: both record the attempt's event, which must be one object.
    settings = audited_settings()
    first = await make_api(aiohttp_client, settings)
    second = await make_api(aiohttp_client, settings)
    created = await first.create_session(project_name)
    session = await first.client.app[SERVICES].sessions.get(created["session-token"])
    attempt = PublishJournal(
        attempt="a1", owner="r1", lease_until=clock.now(), order=[], published_by="config:alice"
    )
    files = {f"{project_name}-1.0.tar.gz": "0" * 64}
    await asyncio.gather(
        *(
            app.client.app[SERVICES].audit.published(session, attempt, files)
            for app in (first, second)
        )
    )
    assert len(by_action(await journal(first, project=project_name))["session.published"]) == 1


# -- legacy pass-through and OIDC ------------------------------------------------------------


async def test_legacy_pass_through_is_journaled_with_the_index_user(
    live_gateway, principal_settings, auditor, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    api = await live_gateway(auth={"principals": [*principal_settings, auditor]})
    wheel = build_wheel(tmp_path, project_name, "1.0")
    status, output = await twine_upload_async(
        api.base + "/legacy/", wheel, password="wrong-index-password-2b"
    )
    assert status != 0, output
    status, output = await twine_upload_async(api.base + "/legacy/", wheel)
    assert status == 0, output
    event, refusal = await journal(api, project=project_name)
    assert refusal["action"] in ("auth.refused", "permission.refused")  # as the index answered
    assert refusal["outcome"] == "refused"
    assert refusal["detail"] == f"The index refused the upload (Basic user {INDEX_USER})."
    assert "principal" not in refusal
    assert event["action"] == "legacy.passed-through"
    assert event["version"] == "1.0"
    assert event["files"] == [{"filename": wheel.name, "sha256": sha256_of(wheel)}]
    assert event["principal"] == {
        "id": f"backend:{INDEX_USER}",
        "name": INDEX_USER,
        "kind": "backend",
        "claims": {},
    }
    assert "twine" in event["user_agent"]
    await assert_no_secret(api, INDEX_PASSWORD, "wrong-index-password-2b", AUDITOR_PASSWORD)


async def test_oidc_events_name_the_issuer_and_the_matched_claims(
    aiohttp_server, aiohttp_client, audited_settings
) -> None:  # type: ignore[no-untyped-def]
    issuer = Issuer()
    jwks_url = await serve_jwks(aiohttp_server, issuer)
    oidc = {
        "issuers": [{"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": jwks_url}],
        "policies": [
            {
                "issuer": ISSUER,
                "claims": {"repository": "acme/*", "job_workflow_ref": "acme/*"},
                "projects": ["acme-*"],
            }
        ],
    }
    api = await make_api(aiohttp_client, audited_settings(auth={"oidc": oidc}))
    project = f"acme-{time.time_ns()}"
    token = issuer.token(
        workflow="release",
        ref="refs/tags/v1",
        job_workflow_ref="acme/widgets/.github/workflows/release.yml@refs/tags/v1",
        actor="someone",
    )
    response = await api.post_json(
        api.root, {"meta": META, "name": project, "version": "1.0"}, f"Bearer {token}"
    )
    assert response.status == 201, await response.text()
    [event] = await journal(api, project=project)
    assert event["principal"] == {
        "id": f"oidc:{ISSUER}:repo:acme/widgets:ref:refs/tags/v1",
        "name": "acme/widgets",
        "kind": "oidc",
        "issuer": ISSUER,
        "claims": {
            "repository": "acme/widgets",
            "workflow": "release",
            "ref": "refs/tags/v1",
            "job_workflow_ref": "acme/widgets/.github/workflows/release.yml@refs/tags/v1",
        },
    }
    await assert_no_secret(api, token, token.split(".")[2], AUDITOR_PASSWORD, TOKEN)


# -- failures and replicas --------------------------------------------------------------------


async def test_an_event_that_cannot_be_written_fails_the_action(
    aiohttp_client, audited_settings, project_name: str, capfd
) -> None:  # type: ignore[no-untyped-def]
    settings = audited_settings(audit={"bucket": f"audit-{time.time_ns()}"})
    api = await make_api(aiohttp_client, settings)
    s3 = api.client.app[S3_CLIENT]
    await s3.delete_bucket(Bucket=settings.audit.bucket)  # the journal's bucket goes away
    response = await api.post_json(api.root, {"meta": META, "name": project_name, "version": "1.0"})
    document = await problem(response, 503)
    assert document["type"].endswith("storage-unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    await problem(
        await api.post_json(api.root, {"meta": META, "name": "x", "version": "1"}, WRONG), 503
    )
    # Not silent: the event that could not be written is in the error log, whole.
    logged = capfd.readouterr()
    assert "audit.write_failed" in logged.err + logged.out
    assert "session.created" in logged.err + logged.out
    await assert_consistent(api)
    await s3.create_bucket(Bucket=settings.audit.bucket)
    # The client's retry finds the session it created (409 + Location), and goes on with it.
    again = await api.post_json(api.root, {"meta": META, "name": project_name, "version": "1.0"})
    assert again.status == 409
    location = again.headers["Location"]
    extend = await api.post_json(location + "/extend", {"meta": META, "extend-for": 60})
    assert extend.status == 200
    assert [e["action"] for e in await journal(api, project=project_name)] == ["session.extended"]


@pytest.fixture
async def s3_fault(seaweedfs: Server) -> AsyncIterator[FaultProxy]:
    proxy = await FaultProxy(seaweedfs.url).start()
    yield proxy
    await proxy.close()


async def test_s3_down_turns_a_refusal_into_503_not_an_unrecorded_401(
    aiohttp_client, audited_settings, s3_fault: FaultProxy
) -> None:  # type: ignore[no-untyped-def]
    settings = audited_settings(s3={"endpoint_url": s3_fault.url, "timeout": 3, "attempts": 1})
    api = await make_api(aiohttp_client, settings)
    body = {"meta": META, "name": "x", "version": "1"}
    s3_fault.reset()
    await problem(await api.post_json(api.root, body, WRONG), 503)
    s3_fault.heal()
    await problem(await api.post_json(api.root, body, WRONG), 401)
    assert [e["action"] for e in await journal(api)] == ["auth.refused"]


async def test_two_replicas_writing_at_once_lose_nothing(
    replicas, aiohttp_client, audited_settings
) -> None:  # type: ignore[no-untyped-def]
    reader = await make_api(aiohttp_client, audited_settings())
    prefix = reader.client.app[SERVICES].settings.s3.prefix
    started = [replicas(prefix) for _ in range(2)]
    stamp = time.time_ns()
    projects = [f"replica-{stamp}-{n}" for n in range(40)]
    async with aiohttp.ClientSession() as http:
        await asyncio.gather(
            *(
                create_session(http, started[n % 2].api, project)
                for n, project in enumerate(projects)
            )
        )
    events = await journal(reader, limit=7)
    created = [e for e in events if e["action"] == "session.created"]
    assert sorted(e["project"] for e in created) == sorted(projects)
    assert len({e["id"] for e in events}) == len(events)


# -- the reader ---------------------------------------------------------------------------------


async def test_reader_paginates_filters_and_refuses(
    aiohttp_client, audited_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(aiohttp_client, audited_settings())
    for version in ("1.0", "1.1", "1.2", "1.3", "1.4"):
        await api.create_session(project_name, version)
    await api.create_session(project_name + "-other")
    whole = await journal(api, project=project_name)
    assert [e["version"] for e in whole] == ["1.4", "1.3", "1.2", "1.1", "1.0"]
    assert await journal(api, limit=2, project=project_name) == whole
    first = await (await read_page(api, project=project_name, limit="2")).json()
    assert [e["version"] for e in first["events"]] == ["1.4", "1.3"]
    assert first["next"]
    assert len(await journal(api)) == 6  # every project
    today = datetime.now(UTC).date().isoformat()
    assert await journal(api, project=project_name, since=today) == whole
    cut = whole[2]["time"]  # an RFC 3339 time: events at or after it
    assert [e["version"] for e in await journal(api, project=project_name, since=cut)] == [
        "1.4",
        "1.3",
        "1.2",
    ]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    assert await journal(api, since=tomorrow) == []
    for bad in (
        {"limit": "0"},
        {"limit": "many"},
        {"cursor": "../../etc"},
        {"since": "yesterday"},
        {"project": "not a name!"},
        {"colour": "red"},
    ):
        await problem(await read_page(api, **bad), 400)
    await problem(await read_page(api, authorization=""), 401)
    refused = await problem(await read_page(api, authorization=ALICE.authorization), 403)
    assert "audit" in refused["detail"]
    assert (
        by_action(await journal(api))["permission.refused"][0]["principal"]["id"] == "config:alice"
    )


async def test_retention_deletes_whole_days_past_it(
    aiohttp_client, audited_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(aiohttp_client, audited_settings(audit={"retention_days": 3}))
    await api.create_session(project_name)
    trail = api.client.app[SERVICES].audit
    today = datetime.now(UTC).date()
    await trail.expire(today + timedelta(days=3))
    assert len(await journal(api)) == 1
    await trail.expire(today + timedelta(days=4))
    assert await journal(api) == []
    assert await stored_objects(api) == {}


async def test_cli_prints_the_journal_as_a_table_and_as_json(
    live_gateway, principal_settings, auditor, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    api = await live_gateway(auth={"principals": [*principal_settings, auditor]})
    await api.create_session(project_name)

    async def cli(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "audit",
            "--repository-url",
            api.base + api.root,
            "-u",
            "auditor",
            "-p",
            AUDITOR_PASSWORD,
            *args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    table = await cli("--project", project_name, "--since", "2026-01-01")
    assert "session.created" in table
    assert project_name in table
    assert "alice" in table
    lines = (await cli("--project", project_name, "--json")).splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["session.created"]
