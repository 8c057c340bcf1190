"""Publishing sessions over HTTP against real S3 (R-G1..G8, R-P1..P3, P5, P6, P10, P11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.settings import Settings
from tests.conftest import ALICE, BOB, TOKEN
from tests.integration.conftest import META, Api, make_api, problem

EXPIRES_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


async def test_create_session(api: Api, project_name: str) -> None:  # R-P1
    response = await api.post_json(
        api.root, {"meta": META, "name": project_name.upper(), "version": "1.0"}
    )
    assert response.status == 201
    assert response.content_type == UPLOAD_V2_JSON
    body = await response.json(content_type=UPLOAD_V2_JSON)
    assert response.headers["Location"] == body["links"]["session"]
    assert body["meta"] == META
    assert body["status"] == "open"
    assert body["files"] == {}
    assert "http-post-bytes" in body["mechanisms"]
    assert set(body["links"]) == {"session", "upload", "publish", "extend", "stage"}
    for link in body["links"].values():
        assert link.startswith("https://uploads.example.test/")  # R-G1: the public base
    assert len(body["session-token"]) >= 22  # >= 128 bits, url-safe base64
    assert body["session-token"] in body["links"]["stage"]
    expires = datetime.strptime(body["expires-at"], EXPIRES_FORMAT).replace(tzinfo=UTC)
    assert timedelta(days=6, hours=23) < expires - datetime.now(UTC) <= timedelta(days=7)


async def test_status_echoes_creation_body(api: Api, project_name: str) -> None:  # R-P5
    created = await api.create_session(project_name)
    response = await api.get(created["links"]["session"])
    assert response.status == 200
    assert await response.json(content_type=UPLOAD_V2_JSON) == created


async def test_second_create_conflicts_with_location(api: Api, project_name: str) -> None:
    created = await api.create_session(project_name, "2.0")
    # Same release spelled differently: name and version are normalized (R-P2).
    response = await api.post_json(
        api.root, {"meta": META, "name": project_name.replace("-", "_"), "version": "2.0.0"}
    )
    await problem(response, 409)
    assert response.headers["Location"] == created["links"]["session"]


async def test_unauthorized_caller_gets_403_not_409(api: Api) -> None:  # R-P3
    await api.create_session("alice-only", "1.0")
    response = await api.post_json(
        api.root, {"meta": META, "name": "alice-only", "version": "1.0"}, BOB.authorization
    )
    await problem(response, 403)
    assert "Location" not in response.headers


async def test_new_session_after_cancel_differs(api: Api, project_name: str) -> None:  # R-P3
    first = await api.create_session(project_name)
    assert (await api.delete(first["links"]["session"])).status == 204
    second = await api.create_session(project_name)
    for key in ("session", "stage"):
        assert first["links"][key] != second["links"][key]
    assert first["session-token"] != second["session-token"]


async def test_concurrent_creates_make_one_session(api: Api, project_name: str) -> None:
    import asyncio

    responses = await asyncio.gather(
        *(
            api.post_json(api.root, {"meta": META, "name": project_name, "version": "3.0"})
            for _ in range(8)
        )
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] + [409] * 7
    locations = {r.headers["Location"] for r in responses}
    assert len(locations) == 1


async def test_cancel_then_status_says_canceled(api: Api, project_name: str) -> None:  # R-P6
    created = await api.create_session(project_name)
    assert (await api.delete(created["links"]["session"])).status == 204
    status = await (await api.get(created["links"]["session"])).json(content_type=UPLOAD_V2_JSON)
    assert status["status"] == "canceled"
    response = await api.post_json(created["links"]["extend"], {"meta": META, "extend-for": 60})
    await problem(response, 404)
    await problem(await api.delete(created["links"]["session"]), 404)


async def test_extend(api: Api, project_name: str) -> None:  # R-P10
    created = await api.create_session(project_name)
    response = await api.post_json(created["links"]["extend"], {"meta": META, "extend-for": 3600})
    assert response.status == 200
    body = await response.json(content_type=UPLOAD_V2_JSON)
    before = datetime.strptime(created["expires-at"], EXPIRES_FORMAT)
    after = datetime.strptime(body["expires-at"], EXPIRES_FORMAT)
    assert after - before == timedelta(hours=1)


async def test_capped_extension_still_succeeds(
    aiohttp_client, make_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(sessions={"lifetime": 3600, "max_lifetime": 3600})
    api = await make_api(aiohttp_client, settings)
    created = await api.create_session(project_name)
    response = await api.post_json(created["links"]["extend"], {"meta": META, "extend-for": 99999})
    assert response.status == 200
    assert (await response.json(content_type=UPLOAD_V2_JSON))["expires-at"] == created["expires-at"]


async def test_token_and_bearer_authenticate(api: Api, project_name: str) -> None:
    import base64

    basic = "Basic " + base64.b64encode(f"__token__:{TOKEN}".encode()).decode()
    for authorization in (basic, f"Bearer {TOKEN}"):
        response = await api.post_json(
            api.root,
            {"meta": META, "name": project_name, "version": "1.0"},
            authorization,
        )
        assert response.status in (201, 409)


@pytest.mark.parametrize(
    "authorization", [None, "Basic bm9wZTpub3Bl", "Bearer wrong", "Basic !!!", "Digest x"]
)
async def test_missing_or_wrong_credentials_get_401(
    client: TestClient, settings: Settings, authorization: str | None
) -> None:  # R-G6
    headers = {"Content-Type": UPLOAD_V2_JSON}
    if authorization:
        headers["Authorization"] = authorization
    response = await client.post(
        settings.server.api_root, json={"meta": META, "name": "x", "version": "1"}, headers=headers
    )
    document = await problem(response, 401)
    challenge = response.headers["WWW-Authenticate"]
    assert "Basic realm=" in challenge
    assert "Bearer realm=" in challenge
    assert authorization is None or authorization not in str(document)


async def test_revoked_permission_is_denied_per_request(
    aiohttp_client, make_settings, principal_settings, project_name: str
) -> None:  # type: ignore[no-untyped-def]
    """R-G7: a principal whose permission is gone gets 403 on its next request."""
    settings = make_settings()
    api = await make_api(aiohttp_client, settings)
    created = await api.create_session(project_name)
    revoked = [
        dict(p, projects=["other-*"]) if p["name"] == "alice" else p for p in principal_settings
    ]
    later = make_settings(s3={"prefix": settings.s3.prefix}, auth={"principals": revoked})
    api_later = await make_api(aiohttp_client, later)
    await problem(await api_later.get(created["links"]["session"]), 403)
    await problem(await api_later.delete(created["links"]["session"]), 403)
    # Permission is evaluated per request, not bound to the creator: Bob is never allowed.
    bob = Api(api.client, settings, BOB.authorization)
    await problem(await bob.get(created["links"]["session"]), 403)


BAD_BODIES = [
    ({"meta": META, "name": "x"}, "version"),
    ({"meta": META, "version": "1.0"}, "name"),
    ({"name": "x", "version": "1.0"}, "meta"),
    ({"meta": {"api-version": "3.0"}, "name": "x", "version": "1.0"}, "api-version"),
    ({"meta": {"api-version": "2"}, "name": "x", "version": "1.0"}, "api-version"),
    ({"meta": {"api-version": 2.0}, "name": "x", "version": "1.0"}, "api-version"),
    ({"meta": META, "name": 5, "version": "1.0"}, "name"),
    ({"meta": META, "name": "x", "version": 1.0}, "version"),
    ({"meta": META, "name": "-bad-", "version": "1.0"}, "name"),
    ({"meta": META, "name": "x", "version": "one"}, "version"),
    ([1, 2], "body"),
    ("just a string", "body"),
]


@pytest.mark.parametrize(("body", "source"), BAD_BODIES)
async def test_bad_bodies_get_400_and_create_nothing(api: Api, body: object, source: str) -> None:
    response = await api.post_json(api.root, body)
    document = await problem(response, 400)
    assert source in str(document["errors"])


async def test_malformed_json(client: TestClient, settings: Settings) -> None:
    response = await client.post(
        settings.server.api_root,
        data=b'{"meta": {',
        headers={"Authorization": ALICE.authorization, "Content-Type": UPLOAD_V2_JSON},
    )
    await problem(response, 400)


@pytest.mark.parametrize(
    "content_type", [None, "application/json", "text/plain", "application/vnd.pypi.upload.v3+json"]
)
async def test_wrong_content_type_is_415(
    client: TestClient, settings: Settings, content_type: str | None
) -> None:  # R-G2
    headers = {"Authorization": ALICE.authorization}
    if content_type:
        headers["Content-Type"] = content_type
    response = await client.post(
        settings.server.api_root,
        data=b'{"meta": {"api-version": "2.0"}, "name": "x", "version": "1"}',
        headers=headers,
    )
    await problem(response, 415)


async def test_oversized_body_is_413(client: TestClient, settings: Settings) -> None:
    response = await client.post(
        settings.server.api_root,
        data=b'{"meta": {"api-version": "2.0"}, "pad": "' + b"x" * 70_000 + b'"}',
        headers={"Authorization": ALICE.authorization, "Content-Type": UPLOAD_V2_JSON},
    )
    await problem(response, 413)


async def test_unknown_keys_and_index_meta_are_accepted(api: Api, project_name: str) -> None:
    response = await api.post_json(
        api.root,
        {
            "meta": {"api-version": "2.1", "_example.org": {"org": "x"}},
            "name": project_name,
            "version": "1.0",
            "future-key": True,
        },
    )
    assert response.status == 201


async def test_not_acceptable(api: Api, project_name: str) -> None:  # R-G4
    response = await api.post_json(
        api.root, {"meta": META, "name": project_name, "version": "1"}, Accept="text/html"
    )
    await problem(response, 406)


async def test_unknown_session_and_wrong_method(api: Api, client: TestClient) -> None:
    await problem(await api.get(f"{api.base}{api.root}sessions/nope"), 404)
    await problem(await client.get("/no/such/path"), 404)
    response = await client.put(api.root, headers=api.headers())
    await problem(response, 405)
    assert "POST" in response.headers["Allow"]


async def test_request_id_round_trip(api: Api, client: TestClient) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = await client.get("/healthz")
    assert len(generated.headers["X-Request-ID"]) == 16


# -- Audit of the request rules (issue #15): the smallest input that breaks each one. --------


@pytest.mark.parametrize("extend_for", [-1, "60", 1.5, True, None, [60]])
async def test_extend_for_audit(api: Api, project_name: str, extend_for: object) -> None:  # R-P10
    created = await api.create_session(project_name)
    response = await api.post_json(
        created["links"]["extend"], {"meta": META, "extend-for": extend_for}
    )
    document = await problem(response, 400)
    assert "extend-for" in str(document["errors"])
    missing = await api.post_json(created["links"]["extend"], {"meta": META})
    assert "extend-for" in str((await problem(missing, 400))["errors"])


@pytest.mark.parametrize("extend_for", [0, 60.0, 10**12, 10**400])
async def test_extend_for_boundaries_succeed(
    api: Api, project_name: str, extend_for: int
) -> None:  # R-P10: 0 keeps, a huge ask is capped (it once overflowed datetime: a 500)
    created = await api.create_session(project_name)
    response = await api.post_json(
        created["links"]["extend"], {"meta": META, "extend-for": extend_for}
    )
    assert response.status == 200, await response.text()
    body = await response.json(content_type=UPLOAD_V2_JSON)
    assert body["expires-at"] >= created["expires-at"]


@pytest.mark.parametrize(
    ("name", "version"),
    # (PEP 440 ignores whitespace around a version: "1.0\n" is 1.0 and is accepted.)
    [("x", ""), ("x", " "), ("x\n", "1.0"), ("-x", "1"), ("x", "1..0")],
)
async def test_release_audit(api: Api, name: str, version: str) -> None:  # R-P1, R-P2
    response = await api.post_json(api.root, {"meta": META, "name": name, "version": version})
    await problem(response, 400)
