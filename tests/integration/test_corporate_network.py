"""A gateway on a corporate network (issue 18): every outbound hop over TLS signed by a private
CA, with client certificates, and through an HTTP proxy.

Real components: SeaweedFS's S3 over TLS demanding a client certificate, pypiserver behind
Debian's nginx terminating TLS and demanding a client certificate, a CONNECT proxy that counts
its tunnels. They start once for this module.
"""

from __future__ import annotations

import shutil
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.app import create_app
from gateway.devstack import Server, start_nginx_tls, start_seaweedfs
from gateway.mechanisms import HTTP_POST_BYTES, S3_PRESIGNED
from gateway.protocol.media import UPLOAD_V2_JSON
from gateway.publish.backends import backend_for
from gateway.settings import MiB, Settings
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.conftest import META, Api, make_api
from tests.integration.tls_stack import ConnectProxy, Pki, make_pki

pytestmark = pytest.mark.skipif(
    shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists(),
    reason="needs Debian's nginx (make install installs it as root)",
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_s3(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    where = tmp_path_factory.mktemp("tls-s3")
    server = start_seaweedfs(where / "data", where / "seaweedfs.log", pki.server_with_client_ca)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tls_index(
    pki: Pki, pypiserver: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    where = tmp_path_factory.mktemp("nginx")
    server = start_nginx_tls(pypiserver.url, where, pki.server_with_client_ca, where / "nginx.log")
    yield server
    server.stop()


@pytest.fixture
def connect_proxy() -> Iterator[ConnectProxy]:
    proxy = ConnectProxy()
    yield proxy
    proxy.close()


def client_tls(pki: Pki, **overrides: object) -> dict[str, object]:
    return {
        "ca_bundle": str(pki.ca),
        "client_cert": str(pki.client_cert),
        "client_key": str(pki.client_key),
        **overrides,
    }


@pytest.fixture
def corp_settings(make_settings, pki: Pki, tls_s3: Server, tls_index: Server):  # type: ignore[no-untyped-def]
    def make(s3: dict[str, object] | None = None, backend: dict[str, object] | None = None,
             **sections: dict[str, object]) -> Settings:  # fmt: skip
        return make_settings(
            s3={"endpoint_url": tls_s3.url, "part_size": 5 * MiB, **client_tls(pki), **(s3 or {})},
            backend={
                "upload_url": tls_index.url + "/",
                "simple_url": tls_index.url + "/simple/",
                **client_tls(pki),
                **(backend or {}),
            },
            uploads={"mechanisms": [S3_PRESIGNED, HTTP_POST_BYTES]},
            **sections,
        )

    return make


async def presigned_upload(api: Api, session: dict[str, Any], path: Path, pki: Pki) -> None:
    """The presigned mechanism: bytes PUT straight to S3 (mutual TLS), then read back by the
    gateway to verify them (the hop that bypasses aiobotocore)."""
    data = path.read_bytes()
    file = await api.create_file(session, path.name, data, mechanism=S3_PRESIGNED)
    context = ssl.create_default_context(cafile=pki.ca)
    context.load_cert_chain(pki.client_cert, pki.client_key)
    async with aiohttp.ClientSession() as http:
        size = file["mechanism"]["part_size"]
        for part in file["mechanism"]["parts"]:
            chunk = data[(part["number"] - 1) * size : part["number"] * size]
            async with http.put(part["url"], data=chunk, ssl=context) as response:
                assert response.status == 200, await response.text()
    response = await api.complete(file)
    assert response.status == 201, await response.text()


async def publish_release(api: Api, project: str, tmp_path: Path, pki: Pki) -> list[Path]:
    wheel = build_wheel(tmp_path, project, "1.0", payload=b"wheel")
    sdist = build_sdist(tmp_path, project, "1.0", payload=b"sdist")
    session = await api.create_session(project)
    await api.upload(session, sdist)
    await presigned_upload(api, session, wheel, pki)
    response = await api.post_json(session["links"]["publish"], {"meta": META})
    assert response.status == 201, await response.text()
    assert (await response.json(content_type=UPLOAD_V2_JSON))["status"] == "published"
    return [wheel, sdist]


async def test_full_flow_over_mutual_tls_on_every_hop(
    aiohttp_client, corp_settings, pki: Pki, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    api = await make_api(aiohttp_client, corp_settings())
    ready = await api.client.get("/readyz")
    assert ready.status == 200, await ready.text()
    wheel, sdist = await publish_release(api, project_name, tmp_path, pki)
    # Straight from pypiserver, behind nginx's back: the files really are on the index.
    plain = corp_settings().backend.model_copy(update={"simple_url": pypiserver.url + "/simple/"})
    async with aiohttp.ClientSession() as http:
        listed = await backend_for(plain, http).published_files(project_name)
    assert listed == {wheel.name: sha256_of(wheel), sdist.name: sha256_of(sdist)}


async def test_index_with_an_untrusted_certificate_is_backend_unavailable(
    aiohttp_client, corp_settings, pki: Pki, project_name: str, tmp_path: Path, capfd
) -> None:  # type: ignore[no-untyped-def]
    # The system store (SSL_CERT_FILE in this environment) does not know the company CA.
    settings = corp_settings(backend={"ca_bundle": str(pki.stranger_ca)})
    api = await make_api(aiohttp_client, settings)
    ready = await api.client.get("/readyz")
    assert ready.status == 503
    errors = {item["source"]: item["message"] for item in (await ready.json())["errors"]}
    assert errors["backend"].startswith("TLS handshake failed")
    assert "certificate verify failed" in errors["backend"].lower()
    assert "s3" not in errors
    response = await api.post_json(
        api.root, {"meta": META, "name": project_name, "version": "1.0"}
    )  # the gateway asks the index what it holds of the project first
    assert response.status == 503, await response.text()
    assert (await response.json())["type"].endswith("backend-unavailable")
    assert "CERTIFICATE_VERIFY_FAILED" in capfd.readouterr().err


async def test_readyz_names_the_read_proxy_upstream_when_its_handshake_fails(
    aiohttp_client, corp_settings, pki: Pki, tls_index: Server
) -> None:  # type: ignore[no-untyped-def]
    upstream = {"read_proxy": True, "upstream": tls_index.url, "ca_bundle": str(pki.stranger_ca)}
    api = await make_api(aiohttp_client, corp_settings(proxy=upstream))
    ready = await api.client.get("/readyz")
    assert ready.status == 503
    errors = {item["source"]: item["message"] for item in (await ready.json())["errors"]}
    assert set(errors) == {"proxy"}
    assert errors["proxy"].startswith("TLS handshake failed")


async def test_index_without_the_client_certificate_is_backend_unavailable(
    aiohttp_client, corp_settings, pki: Pki, project_name: str, tmp_path: Path, capfd
) -> None:  # type: ignore[no-untyped-def]
    settings = corp_settings(backend={"client_cert": None, "client_key": None})
    api = await make_api(aiohttp_client, settings)
    response = await api.post_json(
        api.root, {"meta": META, "name": project_name, "version": "1.0"}
    )  # the gateway asks the index what it holds of the project first
    assert response.status == 503, await response.text()
    assert (await response.json())["type"].endswith("backend-unavailable")
    # nginx finishes the handshake and answers 400 "No required SSL certificate was sent".
    assert "answered an unexpected 400" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("s3", "reason"),
    [
        ({"ca_bundle": None}, "CERTIFICATE_VERIFY_FAILED"),
        ({"client_cert": None, "client_key": None}, "CERTIFICATE_REQUIRED"),
    ],
)
async def test_s3_without_its_tls_settings_stops_the_start_naming_the_hop(
    aiohttp_client, corp_settings, s3: dict[str, object], reason: str, capfd
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exception):  # noqa: B017, PT011  (botocore's SSLError, as raised)
        await make_api(aiohttp_client, corp_settings(s3=s3))
    err = capfd.readouterr().err
    line = next(line for line in err.splitlines() if "startup.s3_unreachable" in line)
    assert "hop=s3" in line.replace("'", "")
    assert reason in line


def bearer_token(issuer: str) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode({"iss": issuer, "aud": "gw"}, key, algorithm="RS256", headers={"kid": "k"})


async def test_every_hop_goes_through_the_proxy_unless_no_proxy_matches(
    aiohttp_client,
    corp_settings,
    pki: Pki,
    tls_s3: Server,
    tls_index: Server,
    connect_proxy: ConnectProxy,
    project_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    # Names only this test uses, so that each hop's tunnel can be told apart: the read
    # proxy's upstream is the same index as "localhost", key discovery another "localhost".
    upstream = tls_index.url.replace("127.0.0.1", "localhost")
    jwks = tls_s3.url.replace("127.0.0.1", "localhost") + "/jwks.json"
    settings = corp_settings(
        proxy={"read_proxy": True, "upstream": upstream, **client_tls(pki)},
        auth={
            "oidc": {
                "issuers": [{"issuer": "https://issuer.test", "audience": "gw", "jwks_url": jwks}]
            }
        },
    )
    api = await make_api(aiohttp_client, settings)
    await publish_release(api, project_name, tmp_path, pki)
    assert (await api.client.get(f"/simple/{project_name}/")).status == 200
    token = bearer_token("https://issuer.test")
    await api.client.get("/upload/2.0/openapi.json")  # unauthenticated: no key fetch
    response = await api.client.post(
        "/upload/2.0/",
        json={"meta": META, "name": project_name, "version": "2.0"},
        headers={"Authorization": f"Bearer {token}", "Content-Type": UPLOAD_V2_JSON},
    )
    assert response.status == 401  # the keys could not be fetched: but they were asked for
    s3 = tls_s3.url.removeprefix("https://")
    index = tls_index.url.removeprefix("https://")
    lines = set(connect_proxy.tunnels)
    assert f"CONNECT {s3} HTTP/1.1" in lines  # aiobotocore
    assert f"CONNECT {s3} HTTP/1.0" in lines  # the presigned read-back (http.client)
    assert f"CONNECT {index} HTTP/1.1" in lines  # listings and uploads to the index
    assert connect_proxy.targets() == {s3, index, upstream.removeprefix("https://"),
                                       jwks.removeprefix("https://").split("/")[0]}  # fmt: skip

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    connect_proxy.reset()
    api = await make_api(aiohttp_client, settings)
    (tmp_path / "b").mkdir()
    await publish_release(api, project_name + "-b", tmp_path / "b", pki)
    assert (await api.client.get(f"/simple/{project_name}-b/")).status == 200
    await api.client.post(
        "/upload/2.0/",
        json={"meta": META, "name": project_name, "version": "2.0"},
        headers={"Authorization": f"Bearer {token}", "Content-Type": UPLOAD_V2_JSON},
    )
    assert connect_proxy.tunnels == {}


async def test_an_explicit_hop_proxy_overrides_the_environment(
    aiohttp_client, corp_settings, pki: Pki, connect_proxy: ConnectProxy, tls_index: Server,
    project_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.delenv("NO_PROXY", raising=False)
    settings = corp_settings(
        s3={"outbound_proxy": ""}, backend={"outbound_proxy": connect_proxy.url}
    )
    api = await make_api(aiohttp_client, settings)
    await publish_release(api, project_name, tmp_path, pki)
    assert connect_proxy.targets() == {tls_index.url.removeprefix("https://")}


def test_verify_false_is_logged_at_start_up(corp_settings, capfd) -> None:  # type: ignore[no-untyped-def]
    create_app(corp_settings(backend={"verify": False}), run_sweeper=False)
    err = capfd.readouterr().err
    assert "tls.verification_disabled" in err
    assert "backend" in err
