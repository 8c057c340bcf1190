"""Pass-through, OIDC trusted publishing, name reservation, revocation and secrets hygiene
against real servers (R-G6, R-G7, R-P4, R-P12)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gateway.api.context import SERVICES
from gateway.app_keys import HTTP_CLIENT, S3_CLIENT
from gateway.devstack import Server
from gateway.publish.backends import backend_for
from gateway.store import keys
from gateway.store.record_store import RecordStore
from tests.conftest import ALICE, INDEX_PASSWORD, INDEX_USER, TOKEN
from tests.distributions import build_wheel, sha256_of
from tests.integration.conftest import META, Api, backend_section, make_api, problem
from tests.integration.oidc import AUDIENCE, ISSUER, Issuer, serve_jwks

INDEXER = "Basic " + base64.b64encode(f"{INDEX_USER}:{INDEX_PASSWORD}".encode()).decode()
CI_TOKEN = f"Bearer {TOKEN}"


@pytest.mark.parametrize("kind", ["pypiserver", "devpi"])
async def test_passthrough_credentials_are_checked_and_used_to_publish(
    aiohttp_client,
    make_settings,
    pypiserver: Server,
    devpi: Server,
    kind: str,
    project_name: str,
    tmp_path: Path,
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        backend=backend_section(kind, devpi if kind == "devpi" else pypiserver, credentials=False),
        auth={"passthrough": {"enabled": True}},
    )
    api = await make_api(aiohttp_client, settings, INDEXER)
    wrong = "Basic " + base64.b64encode(f"{INDEX_USER}:nope".encode()).decode()
    response = await api.post_json(
        api.root, {"meta": META, "name": project_name, "version": "1.0"}, wrong
    )
    await problem(response, 401)
    assert "Basic realm=" in response.headers["WWW-Authenticate"]
    session = await api.create_session(project_name)
    wheel = build_wheel(tmp_path, project_name, "1.0")
    await api.upload(session, wheel)
    response = await api.post_json(session["links"]["publish"], {"meta": META})
    assert response.status == 201, await response.text()
    backend = backend_for(settings.backend, api.client.app[HTTP_CLIENT])
    listing = await backend.published_files(project_name)
    assert listing == {wheel.name: sha256_of(wheel)}
    # Config principals still work alongside (the chain asks each in turn).
    assert await Api(api.client, settings, ALICE.authorization).status(session["links"]["session"])


async def test_interrupted_passthrough_publish_asks_to_publish_again(
    aiohttp_client,
    make_settings,
    pypiserver: Server,
    devpi: Server,
    project_name: str,
    tmp_path: Path,
    bucket_records: RecordStore,
) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(
        backend=backend_section("pypiserver", pypiserver, credentials=False),
        auth={"passthrough": {"enabled": True}},
    )
    api = await make_api(aiohttp_client, settings, INDEXER)
    session = await api.create_session(project_name)
    await api.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    # As if a replica accepted the publish with the caller's credential and then died.
    await bucket_records.update(
        keys.session(session["session-token"]),
        lambda d: {
            **d,
            "status": "processing",
            "publish": {
                "attempt": "a1",
                "owner": "gone",
                "lease_until": "2000-01-01T00:00:00Z",
                "order": [],
                "published_by": "backend:indexer",
                "credential": "caller",
            },
        },
    )
    await api.client.app[SERVICES].sweeper.sweep()
    status = await api.status(session["links"]["session"])
    assert status["status"] == "error"
    assert any("publish again" in notice for notice in status["notices"])
    response = await api.post_json(session["links"]["publish"], {"meta": META})
    assert response.status == 201, await response.text()


# -- OIDC -------------------------------------------------------------------------------


@pytest.fixture
async def oidc(aiohttp_server, aiohttp_client, make_settings):  # type: ignore[no-untyped-def]
    issuer = Issuer()
    jwks_url = await serve_jwks(aiohttp_server, issuer)
    settings = make_settings(
        auth={
            "oidc": {
                "issuers": [
                    {
                        "issuer": ISSUER,
                        "audience": AUDIENCE,
                        "jwks_url": jwks_url,
                    }
                ],
                "policies": [
                    {"issuer": ISSUER, "claims": {"repository": "acme/*"}, "projects": ["acme-*"]}
                ],
            }
        }
    )
    api = await make_api(aiohttp_client, settings, "")
    return issuer, api


async def create(api: Api, token: str, name: str = "acme-widgets") -> Any:
    return await api.post_json(
        api.root, {"meta": META, "name": name, "version": "1.0"}, f"Bearer {token}"
    )


async def test_oidc_token_publishes_what_its_policy_allows(oidc) -> None:  # type: ignore[no-untyped-def]
    issuer, api = oidc
    response = await create(api, issuer.token(), "acme-" + str(time.time_ns()))
    assert response.status == 201, await response.text()
    await problem(await create(api, issuer.token(), "other-project"), 403)
    await problem(await create(api, issuer.token(repository="evil/widgets")), 403)


@pytest.mark.parametrize(
    "mutation",
    [
        "expired",
        "wrong audience",
        "wrong issuer",
        "unknown kid",
        "bad signature",
        "alg none",
        "not yet valid",
        "hmac with public key",
        "garbage",
    ],
)
async def test_bad_oidc_tokens_are_401(oidc, mutation: str) -> None:  # type: ignore[no-untyped-def]
    issuer, api = oidc
    now = int(time.time())
    tokens = {
        "expired": lambda: issuer.token(exp=now - 3600, iat=now - 7200, nbf=now - 7200),
        "wrong audience": lambda: issuer.token(aud="someone-else"),
        "wrong issuer": lambda: issuer.token(iss="https://evil.example"),
        "unknown kid": lambda: _with_new_key(issuer, "k9", register=False),
        "bad signature": lambda: issuer.token()[:-8] + "AAAAAAAA",
        "alg none": lambda: jwt.encode(
            {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "iat": now, "exp": now + 60},
            None,
            algorithm="none",
            headers={"kid": "k1"},
        ),
        "not yet valid": lambda: issuer.token(nbf=now + 3600),
        "hmac with public key": lambda: _hmac_confusion(issuer),
        "garbage": lambda: "a.b.c",
    }
    response = await create(api, tokens[mutation]())
    await problem(response, 401)
    assert "Bearer realm=" in response.headers["WWW-Authenticate"]


def _with_new_key(issuer: Issuer, kid: str, register: bool) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(
        {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "x",
            "repository": "acme/w",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
        },
        key,
        algorithm="ES256",
        headers={"kid": kid},
    )
    if register:
        issuer.keys[kid] = key
    return token


def _hmac_confusion(issuer: Issuer) -> str:
    # The classic attack: sign with HS256 using the public key as the shared secret.
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    header = b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    now = int(time.time())
    payload = b64(
        json.dumps(
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "x",
                "repository": "acme/w",
                "iat": now,
                "exp": now + 60,
            }
        ).encode()
    )
    secret = json.dumps(issuer.jwks()["keys"][0]).encode()
    signature = b64(hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


async def test_rotated_signing_key_is_fetched(oidc, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import gateway.auth.oidc

    issuer, api = oidc
    assert (await create(api, issuer.token(), "acme-a" + str(time.time_ns()))).status == 201
    monkeypatch.setattr(gateway.auth.oidc, "_REFRESH_AT_MOST_EVERY", 0.0)
    token = _with_new_key(issuer, "k2", register=True)
    assert (await create(api, token, "acme-b" + str(time.time_ns()))).status == 201


# -- names, revocation, hygiene ---------------------------------------------------------


async def test_first_release_reserves_the_name(api: Api, project_name: str) -> None:  # R-P4, P12
    ci = Api(api.client, api.client.app[SERVICES].settings, CI_TOKEN)
    first = await api.create_session(project_name, "1.0")
    response = await ci.post_json(ci.root, {"meta": META, "name": project_name, "version": "2.0"})
    document = await problem(response, 403)
    assert document["type"].endswith("name-reserved")
    assert (await api.delete(first["links"]["session"])).status == 204  # releases the name
    second = await ci.create_session(project_name, "2.0")
    assert (await ci.post_json(second["links"]["publish"], {"meta": META})).status == 201
    # Registered for ci: alice's first release of it is refused, through this API at least.
    response = await api.post_json(api.root, {"meta": META, "name": project_name, "version": "3"})
    await problem(response, 403)


async def test_revoked_principal_is_denied_while_another_publishes(
    aiohttp_client, make_settings, principal_settings, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]  # R-G7
    settings = make_settings()
    api = await make_api(aiohttp_client, settings, ALICE.authorization)
    session = await api.create_session(project_name)
    await api.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    revoked = [
        dict(p, projects=["nothing-*"]) if p["name"] == "alice" else p for p in principal_settings
    ]
    reloaded = make_settings(s3={"prefix": settings.s3.prefix}, auth={"principals": revoked})
    alice = await make_api(aiohttp_client, reloaded, ALICE.authorization)
    await problem(await alice.post_json(session["links"]["publish"], {"meta": META}), 403)
    ci = Api(alice.client, reloaded, CI_TOKEN)
    response = await ci.post_json(session["links"]["publish"], {"meta": META})
    assert response.status == 201, await response.text()


async def test_no_secret_reaches_logs_problems_or_the_bucket(
    aiohttp_client,
    make_settings,
    pypiserver: Server,
    devpi: Server,
    oidc,
    project_name: str,
    tmp_path: Path,
    capsys,
) -> None:  # type: ignore[no-untyped-def]
    issuer, oidc_api = oidc
    token = issuer.token()
    await create(oidc_api, token, "acme-" + str(time.time_ns()))
    settings = make_settings(
        backend=backend_section("pypiserver", pypiserver, credentials=False),
        auth={"passthrough": {"enabled": True}},
    )
    api = await make_api(aiohttp_client, settings, INDEXER)
    session = await api.create_session(project_name)
    await api.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    assert (await api.post_json(session["links"]["publish"], {"meta": META})).status == 201
    wrong = await api.post_json(
        api.root,
        {"meta": META, "name": "x", "version": "1"},
        "Basic " + base64.b64encode(b"alice:hunter2-wrong").decode(),
    )
    problem_text = await wrong.text()
    secrets = [
        INDEX_PASSWORD,
        ALICE.password,
        TOKEN,
        token,
        "hunter2-wrong",
        INDEXER.split()[1],
        ALICE.authorization.split()[1],
    ]
    captured = capsys.readouterr()
    stored = b""
    s3 = api.client.app[S3_CLIENT]
    for prefix in (settings.s3.prefix, oidc_api.client.app[SERVICES].settings.s3.prefix):
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings.s3.bucket, Prefix=prefix
        )
        async for page in pages:
            for item in page.get("Contents", []):
                blob = await s3.get_object(Bucket=settings.s3.bucket, Key=item["Key"])
                async with blob["Body"] as body:
                    stored += await body.read()
    for secret in secrets:
        assert secret not in captured.out + captured.err, secret
        assert secret not in problem_text
        assert secret.encode() not in stored, secret
