"""The gateway serving HTTPS itself, demanding client certificates (issue 18, item 3): real
twine, pip and the bundled client with and without the right certificates, and a SIGHUP that
swaps the certificate without dropping an open connection."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from gateway.devstack import Server, free_port
from tests.conftest import ALICE, INDEX_PASSWORD, INDEX_USER, stack_sections
from tests.distributions import build_wheel
from tests.integration.tls_stack import Pki, make_pki


@dataclass(frozen=True)
class Gateway:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    cert: Path
    key: Path
    pki: Pki
    ca: trustme.CA
    client_pem: Path  # certificate and key in one file, as twine's --client-cert wants


def _toml(values: dict[str, dict[str, object]]) -> str:
    lines = []
    for section, keys in values.items():
        if section == "auth":
            continue
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in keys.items()]
    for principal in values["auth"]["principals"]:  # type: ignore[attr-defined]
        lines.append("[[auth.principals]]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in principal.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    seaweedfs: Server,
    pypiserver: Server,
    principal_settings: list[dict[str, object]],
) -> Iterator[Gateway]:
    where = tmp_path_factory.mktemp("https-gateway")
    pki = make_pki(where / "pki")
    ca = trustme.CA()  # its own CA for the served certificate, to issue a renewal from
    served = ca.issue_cert("127.0.0.1")
    cert, key = where / "tls.crt", where / "tls.key"
    served.cert_chain_pems[0].write_to_path(str(cert))
    served.private_key_pem.write_to_path(str(key))
    (where / "served-ca.pem").write_bytes(ca.cert_pem.bytes())
    client_pem = where / "client.pem"
    client_pem.write_bytes(pki.client_cert.read_bytes() + pki.client_key.read_bytes())
    port = free_port()
    config = where / "gateway.toml"
    config.write_text(
        _toml(
            stack_sections(
                seaweedfs, pypiserver, principal_settings, "https-" + os.urandom(4).hex()
            )
            | {
                "server": {
                    "port": port,
                    "public_base_url": f"https://127.0.0.1:{port}",
                    "tls_cert_file": str(cert),
                    "tls_key_file": str(key),
                    "tls_client_ca_file": str(pki.ca),
                },
                "proxy": {"read_proxy": True},
                "logging": {"json": True},
            }
        )
    )
    log = where / "gateway.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(f"https://127.0.0.1:{port}", process, log, cert, key, pki, ca, client_pem)
    deadline = time.monotonic() + 60
    while '"serving"' not in log.read_text():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the gateway did not start"
        time.sleep(0.2)
    yield gateway
    process.send_signal(signal.SIGTERM)
    process.wait(60)


def served_ca(gateway: Gateway) -> Path:
    return gateway.log.parent / "served-ca.pem"


def client_context(gateway: Gateway, with_certificate: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=served_ca(gateway))
    if with_certificate:
        context.load_cert_chain(gateway.pki.client_cert, gateway.pki.client_key)
    return context


def served_serial(gateway: Gateway) -> int:
    port = int(gateway.url.rsplit(":", 1)[1])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        client_context(gateway).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return int(tls.getpeercert()["serialNumber"], 16)  # type: ignore[index,arg-type]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    # requests lets REQUESTS_CA_BUNDLE win over twine's --cert (requests issue 3829): the
    # machine's bundle must not decide what these tests check.
    skip = ("TWINE_", "PIP_", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)


def twine(gateway: Gateway, wheel: Path, *tls: str) -> subprocess.CompletedProcess[str]:
    return run(
        sys.executable, "-m", "twine", "upload", "--non-interactive", "--disable-progress-bar",
        "--repository-url", gateway.url + "/legacy/", "-u", INDEX_USER, "-p", INDEX_PASSWORD,
        *tls, str(wheel),
    )  # fmt: skip


def pip_download(gateway: Gateway, project: str, target: Path, *tls: str):  # type: ignore[no-untyped-def]
    return run(
        sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir",
        "download", "--no-deps", "-d", str(target), "--index-url", gateway.url + "/simple/",
        *tls, f"{project}==1.0",
    )  # fmt: skip


def test_twine_and_pip_need_the_right_certificates(
    gateway: Gateway, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"over https")
    refused = twine(gateway, wheel, "--cert", str(served_ca(gateway)))
    assert refused.returncode != 0, refused.stdout
    untrusted = twine(gateway, wheel, "--client-cert", str(gateway.client_pem))
    assert untrusted.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout + untrusted.stderr
    tls = ("--cert", str(served_ca(gateway)), "--client-cert", str(gateway.client_pem))
    uploaded = twine(gateway, wheel, *tls)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr

    refused = pip_download(
        gateway, project_name, tmp_path / "no", "--cert", str(served_ca(gateway))
    )
    assert refused.returncode != 0
    fetched = pip_download(gateway, project_name, tmp_path / "yes", *tls)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert (tmp_path / "yes" / wheel.name).read_bytes() == wheel.read_bytes()


def test_sighup_swaps_the_certificate_without_dropping_connections(gateway: Gateway) -> None:
    import http.client

    before = served_serial(gateway)
    port = int(gateway.url.rsplit(":", 1)[1])
    open_connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=client_context(gateway), timeout=10
    )
    open_connection.request("GET", "/healthz")
    assert open_connection.getresponse().read()
    renewed = gateway.ca.issue_cert("127.0.0.1")
    renewed.private_key_pem.write_to_path(str(gateway.key))
    renewed.cert_chain_pems[0].write_to_path(str(gateway.cert))
    reloads = gateway.log.read_text().count('"tls.reloaded"')
    gateway.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while gateway.log.read_text().count('"tls.reloaded"') == reloads:
        assert time.monotonic() < deadline, gateway.log.read_text()[-2000:]
        time.sleep(0.1)
    after = served_serial(gateway)
    assert after != before
    pem = renewed.cert_chain_pems[0].bytes()
    assert after == x509.load_pem_x509_certificate(pem).serial_number
    # The connection opened before the swap still works, on its old session.
    open_connection.request("GET", "/healthz")
    response = open_connection.getresponse()
    assert response.status == 200
    open_connection.close()
    assert gateway.process.poll() is None


def bundled_client(gateway: Gateway, wheel: Path, state: Path, *tls: str, **env: str):  # type: ignore[no-untyped-def]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("TWINE_", "UPLOAD_GATEWAY"))}
    return subprocess.run(
        [
            sys.executable, "-m", "gateway", "publish", "--no-keyring", "--state-file", str(state),
            "--repository-url", gateway.url + "/upload/2.0/", "-u", ALICE.name,
            "-p", ALICE.password, *tls, str(wheel),
        ],
        capture_output=True, text=True, timeout=120, env={**clean, **env},
    )  # fmt: skip


def test_the_bundled_client_needs_the_right_certificates(
    gateway: Gateway, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"bundled client")
    state = tmp_path / "sessions.json"
    refused = bundled_client(gateway, wheel, state, "--cert", str(served_ca(gateway)))
    assert refused.returncode == 1, refused.stderr
    untrusted = bundled_client(gateway, wheel, state, "--client-cert", str(gateway.client_pem))
    assert untrusted.returncode == 1
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    # twine's environment variables work as well as the options.
    done = bundled_client(
        gateway, wheel, state,
        TWINE_CERT=str(served_ca(gateway)), TWINE_CLIENT_CERT=str(gateway.client_pem),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Published" in done.stdout
