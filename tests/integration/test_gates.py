"""Release gates (R-W11) against real SeaweedFS and pypiserver, with real PEP 740
attestations (tests/assets/attestations) verified offline: a good attestation is kept, a bad
one is refused with its reason and nothing of it is stored, through Upload 2.0 and through a
staged legacy upload; publish of a covered project needs them; an OIDC token's identity
must be the attestation's."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.api.context import SERVICES
from gateway.app import create_app
from gateway.app_keys import S3_CLIENT
from gateway.devstack import Server, start_pypiserver, write_htpasswd
from gateway.gates.provenance import INTEGRITY_V1_JSON
from gateway.protocol.legacy_upload_form import encode_attestations
from gateway.settings import Settings
from gateway.store import keys
from tests.attestation_assets import (
    OTHER_FILE,
    PROJECT,
    REPOSITORY,
    SDIST,
    SDIST_SHA256,
    VERSION,
    WORKFLOW,
    attestation,
)
from tests.conftest import ALICE, INDEX_PASSWORD, INDEX_USER
from tests.integration.conftest import Api, index_files, make_api, problem
from tests.integration.legacy import legacy_form, post_form, run, stage_url
from tests.integration.oidc import Issuer, serve_jwks

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
GOOD_PUBLISHER = {"kind": "GitHub", "repository": REPOSITORY, "workflow": WORKFLOW}


def policy(**publisher: str) -> dict[str, object]:
    """A policy for pypi-attestations accepting one publisher (the real one by default)."""
    return {
        "projects": [
            {
                "match": PROJECT,
                "require_attestations": True,
                "publishers": [{**GOOD_PUBLISHER, **publisher}],
            }
        ]
    }


@pytest.fixture
def gated(aiohttp_client, make_settings):  # type: ignore[no-untyped-def]
    async def start(**publisher: str) -> Api:
        settings: Settings = make_settings(policy=policy(**publisher))
        return await make_api(aiohttp_client, settings)

    return start


async def attach(api: Api, data: bytes, documents: list[Any]) -> tuple[dict[str, Any], Any]:
    session = await api.create_session(PROJECT, VERSION)
    file = await api.create_file(session, SDIST.name, data)
    response = await api.client.post(
        api.path(file["mechanism"]["attestations_url"]),
        json=documents,
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    return file, response


async def stored_attestations(api: Api, file: dict[str, Any]) -> bytes | None:
    return await api.client.app[SERVICES].files._blobs.get(keys.attestations(*_ids(file)))


def _ids(file: dict[str, Any]) -> tuple[str, str]:
    sid, fid = file["links"]["file-upload-session"].rsplit("/", 3)[1::2]
    return sid, fid


async def test_the_real_attestation_is_verified_and_kept(gated) -> None:  # type: ignore[no-untyped-def]
    api = await gated()
    data = SDIST.read_bytes()
    file, response = await attach(api, data, [attestation()])
    assert response.status == 200, await response.text()
    assert await stored_attestations(api, file) is not None
    upload = await api.client.app[SERVICES].files.get(*_ids(file))
    assert upload.has_attestations
    assert (await api.send_bytes(file, data)).status == 200
    response = await api.complete(file)
    assert response.status == 201, await response.text()


@pytest.mark.parametrize(
    ("publisher", "fragment"),
    [
        ({"repository": "acme/widgets"}, "accepts only: GitHub acme/widgets workflow release.yml"),
        ({"workflow": "ci.yml"}, f"accepts only: GitHub {REPOSITORY} workflow ci.yml"),
    ],
)
async def test_another_publisher_in_the_policy_is_refused(  # type: ignore[no-untyped-def]
    gated, publisher: dict[str, str], fragment: str
) -> None:
    api = await gated(**publisher)
    file, response = await attach(api, SDIST.read_bytes(), [attestation()])
    document = await problem(response, 400)
    assert document["type"].endswith("invalid-attestation")
    assert f"publisher: signed by GitHub {REPOSITORY} workflow {WORKFLOW}" in document["detail"]
    assert fragment in document["detail"]
    assert document["errors"][0]["source"] == "attestations[0]"
    assert await stored_attestations(api, file) is None


async def test_a_tampered_file_is_refused_by_digest(gated) -> None:  # type: ignore[no-untyped-def]
    api = await gated()
    tampered = bytearray(SDIST.read_bytes())
    tampered[-1] ^= 1
    file, response = await attach(api, bytes(tampered), [attestation()])
    document = await problem(response, 400)
    assert "refused: digest: the attested sha256 is not the file's" in document["detail"]
    assert await stored_attestations(api, file) is None


async def test_another_files_attestation_is_refused_by_subject_name(gated) -> None:  # type: ignore[no-untyped-def]
    api = await gated()
    file, response = await attach(api, SDIST.read_bytes(), [attestation(OTHER_FILE)])
    document = await problem(response, 400)
    assert f"refused: subject name: the attestation is for '{OTHER_FILE}'" in document["detail"]
    assert await stored_attestations(api, file) is None


async def test_an_attestation_needs_the_declared_sha256(gated) -> None:  # type: ignore[no-untyped-def]
    api = await gated()
    data = SDIST.read_bytes()
    session = await api.create_session(PROJECT, VERSION)
    file = await api.create_file(
        session, SDIST.name, data, hashes={"sha512": hashlib.sha512(data).hexdigest()}
    )
    response = await api.client.post(
        api.path(file["mechanism"]["attestations_url"]),
        json=[attestation()],
        headers=api.headers(**{"Content-Type": "application/json"}),
    )
    document = await problem(response, 400)
    assert document["errors"][0]["source"] == "hashes.sha256"


async def stage_with_attestation(live: Api) -> Any:
    """A staged legacy upload framed as twine frames it with ``--attestations`` (the
    ``attestations`` field before the file). uv 0.13 sends no attestations to a custom
    index, and twine refuses ``--attestations`` for one (twine#1099)."""
    fields = legacy_form(PROJECT, VERSION, SDIST)
    fields.append(("attestations", encode_attestations([attestation()])))
    return await post_form(stage_url(live), fields, SDIST)


async def test_a_staged_legacy_upload_keeps_its_verified_attestation(live) -> None:  # type: ignore[no-untyped-def]
    response = await stage_with_attestation(live)
    assert response.status == 200, response.reason
    services = live.client.server.app[SERVICES]
    [session] = [s async for s in _sessions(services, PROJECT)]
    [upload] = await services.session_files.records(session.id)
    assert upload.has_attestations
    assert upload.status == "completed"
    # The stage links the file's provenance (PEP 740) from its pages, and serves it.
    project_url = services.urls.stage(session.id) + PROJECT + "/"
    json_page = await live.client.get(live.path(project_url), headers={"Accept": SIMPLE_JSON})
    [entry] = (await json_page.json(content_type=None))["files"]
    assert entry["provenance"] == project_url.replace(
        f"{PROJECT}/", f"+files/{SDIST.name}.provenance"
    )
    html_page = await (await live.client.get(live.path(project_url))).text()
    assert f'data-provenance="{entry["provenance"]}"' in html_page
    served = await live.client.get(live.path(entry["provenance"]))
    assert served.status == 200, await served.text()
    assert served.content_type == INTEGRITY_V1_JSON
    [bundle] = (await served.json(content_type=None))["attestation_bundles"]
    assert bundle["publisher"] == {
        "kind": "GitHub",
        "repository": REPOSITORY,
        "workflow": WORKFLOW,
        "environment": None,
    }


async def test_a_staged_legacy_upload_with_a_bad_attestation_is_refused(  # type: ignore[no-untyped-def]
    live_gateway,
) -> None:
    live: Api = await live_gateway(policy=policy(repository="acme/widgets"))
    response = await stage_with_attestation(live)
    assert response.status == 400
    assert "The attestation for pypi_attestations-0.0.19.tar.gz was refused: publisher" in (
        response.reason or ""
    )
    services = live.client.server.app[SERVICES]
    s3, bucket = live.client.server.app[S3_CLIENT], services.settings.s3.bucket
    for session in [s async for s in _sessions(services, PROJECT)]:
        for upload in await services.session_files.records(session.id):
            assert upload.status == "canceled"  # the refused file is discarded
            assert not upload.has_attestations
            key = services.settings.s3.prefix + keys.attestations(session.id, upload.id)
            stored = await s3.list_objects_v2(Bucket=bucket, Prefix=key)
            assert stored.get("KeyCount", 0) == 0


async def _sessions(services: Any, project: str) -> Any:
    """The release's live session (the tests stage one release of ``project``)."""
    yield await services.sessions.of_release(project, VERSION)


# -- at publish: every file of a covered project needs a verified, allowed attestation ------


async def upload_sdist(api: Api, attested: bool) -> dict[str, Any]:
    session = await api.create_session(PROJECT, VERSION)
    data = SDIST.read_bytes()
    file = await api.create_file(session, SDIST.name, data)
    if attested:
        response = await api.client.post(
            api.path(file["mechanism"]["attestations_url"]),
            json=[attestation()],
            headers=api.headers(**{"Content-Type": "application/json"}),
        )
        assert response.status == 200, await response.text()
    assert (await api.send_bytes(file, data)).status == 200
    response = await api.complete(file)
    assert response.status == 201, await response.text()
    return session


async def test_a_required_attestation_missing_refuses_publish_naming_the_file(gated) -> None:  # type: ignore[no-untyped-def]
    api = await gated()
    session = await upload_sdist(api, attested=False)
    document = await problem(await api.publish(session), 409)
    assert document["type"].endswith("release-gates-unmet")
    assert f"{SDIST.name}: no attestation (the policy requires one)" in document["detail"]
    assert document["errors"] == [
        {"source": f"files.{SDIST.name}", "message": "no attestation (the policy requires one)"}
    ]
    assert (await api.status(session["links"]["session"]))["status"] == "open"


async def test_a_policy_changed_since_the_attestation_was_attached_holds_at_publish(  # type: ignore[no-untyped-def]
    aiohttp_client, make_settings
) -> None:
    before: Settings = make_settings(policy=policy())
    first = await make_api(aiohttp_client, before)
    session = await upload_sdist(first, attested=True)
    # The same bucket and prefix, after the operator narrowed the project's publishers.
    after: Settings = make_settings(policy=policy(repository="acme/widgets"))
    second = await make_api(aiohttp_client, after)
    document = await problem(await second.publish(session), 409)
    assert f"{SDIST.name}: publisher: signed by GitHub {REPOSITORY}" in document["detail"]


@pytest.fixture
def own_index(tmp_path: Path) -> Iterator[Server]:
    """A pypiserver of this test's own: the real pypi-attestations 0.0.19 published on the
    shared one would make every later upload of that file a 409."""
    htpasswd = tmp_path / "htpasswd"
    write_htpasswd(htpasswd, {INDEX_USER: INDEX_PASSWORD})
    server = start_pypiserver(tmp_path / "packages", htpasswd, tmp_path / "pypiserver.log")
    yield server
    server.stop()


async def test_a_release_with_its_verified_attestation_publishes(  # type: ignore[no-untyped-def]
    aiohttp_client, make_settings, own_index: Server, tmp_path: Path
) -> None:
    backend = {"upload_url": own_index.url + "/", "simple_url": own_index.url + "/simple/"}
    settings: Settings = make_settings(policy=policy(), backend=backend)
    client = await aiohttp_client(create_app(settings, run_sweeper=False))
    api = Api(client, settings, ALICE.authorization)
    session = await upload_sdist(api, attested=True)
    response = await api.publish(session)
    assert response.status in (201, 202), await response.text()
    for _ in range(100):
        if (await api.status(session["links"]["session"]))["status"] == "published":
            break
        await asyncio.sleep(0.1)
    assert await index_files(own_index, PROJECT) == {SDIST.name: SDIST_SHA256}
    await served_provenance_verifies_with_the_outside_tool(api, tmp_path)


async def served_provenance_verifies_with_the_outside_tool(api: Api, tmp_path: Path) -> None:
    """The provenance the gateway serves, checked by pypi-attestations' own CLI (offline)."""
    services = api.client.app[SERVICES]
    url = (await services.provenance.links(PROJECT))[SDIST.name]
    assert url == f"{api.base}/integrity/{PROJECT}/{VERSION}/{SDIST.name}/provenance"
    response = await api.client.get(api.path(url))
    assert response.status == 200, await response.text()
    assert response.content_type == INTEGRITY_V1_JSON
    provenance = tmp_path / "served.provenance"
    provenance.write_bytes(await response.read())
    code, output = await run(
        *(sys.executable, "-m", "pypi_attestations", "verify", "pypi", "--offline"),
        *("--provenance-file", str(provenance)),
        *("--repository", f"https://github.com/{REPOSITORY}", str(SDIST)),
    )
    assert code == 0, output
    refused = await api.client.get(api.path(url), headers={"Accept": "text/html"})
    await problem(refused, 406)
    missing = url.replace(SDIST.name, "pypi_attestations-0.0.19-py3-none-any.whl")
    await problem(await api.client.get(api.path(missing)), 404)
    assert list(await services.provenance.links(PROJECT)) == [SDIST.name]


# -- OIDC trusted publishing: the attestation must come from the token's identity ----------

GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
async def github_oidc(aiohttp_server, aiohttp_client, make_settings):  # type: ignore[no-untyped-def]
    """A gateway trusting a local stand-in for GitHub's OIDC issuer (its own keys, served
    from loopback), with the pypi-attestations policy naming environment ``pypi``."""
    issuer = Issuer()
    jwks_url = await serve_jwks(aiohttp_server, issuer)
    oidc = {
        "issuers": [{"issuer": GITHUB, "audience": "gw", "jwks_url": jwks_url}],
        "policies": [
            {"issuer": GITHUB, "claims": {"repository": "trailofbits/*"}, "projects": [PROJECT]}
        ],
    }
    settings = make_settings(auth={"oidc": oidc}, policy=policy(environment="pypi"))
    client = await aiohttp_client(create_app(settings, run_sweeper=False))

    def api_for(**claims: str) -> Api:
        identity = {
            "iss": GITHUB,
            "aud": "gw",
            "repository": REPOSITORY,
            "workflow_ref": f"{REPOSITORY}/.github/workflows/{WORKFLOW}@refs/tags/v0.0.19",
            "environment": "pypi",
        }
        token = issuer.token(**{**identity, **claims})
        return Api(client, settings, f"Bearer {token}")

    return api_for


async def test_an_attestation_from_the_tokens_identity_is_kept(github_oidc) -> None:  # type: ignore[no-untyped-def]
    api = github_oidc()
    _, response = await attach(api, SDIST.read_bytes(), [attestation()])
    assert response.status == 200, await response.text()


@pytest.mark.parametrize(
    ("claims", "fragment"),
    [
        (
            {"workflow_ref": f"{REPOSITORY}/.github/workflows/ci.yml@refs/heads/main"},
            f"token is for GitHub {REPOSITORY} workflow ci.yml",
        ),
        ({"environment": "staging"}, "token's environment is 'staging', the policy requires pypi"),
    ],
)
async def test_an_attestation_not_from_the_tokens_identity_is_refused(  # type: ignore[no-untyped-def]
    github_oidc, claims: dict[str, str], fragment: str
) -> None:
    api = github_oidc(**claims)
    file, response = await attach(api, SDIST.read_bytes(), [attestation()])
    document = await problem(response, 400)
    assert "refused: token identity: " in document["detail"]
    assert fragment in document["detail"]
    assert await stored_attestations(api, file) is None
