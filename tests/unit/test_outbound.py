"""Per-hop proxy choice and TLS settings (issue 18): the environment by default, the hop's own
setting over it, and configuration mistakes caught when the file is loaded."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from gateway.outbound import Hop, TlsConfig, proxy_for, tls_failure
from gateway.settings import ConfigurationError, load_settings

REQUIRED = {
    "s3": {"bucket": "b"},
    "backend": {"upload_url": "https://index/", "simple_url": "https://index/simple/"},
}


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", ".corp.example,127.0.0.1:9000")


@pytest.mark.usefixtures("proxied")
def test_the_environment_decides_unless_the_hop_says_otherwise() -> None:
    assert proxy_for("https://pypi.org/simple/", None) == "http://proxy.corp:3128"
    assert proxy_for("https://pypi.corp.example/simple/", None) is None
    assert proxy_for("https://127.0.0.1:9000/b", None) is None
    assert proxy_for("https://127.0.0.1:9001/b", None) == "http://proxy.corp:3128"
    assert proxy_for("http://pypi.org/", None) is None  # HTTP_PROXY is not set
    assert proxy_for("https://pypi.corp.example/", "http://other:8080") == "http://other:8080"
    assert proxy_for("https://pypi.org/", "") is None


def test_a_hop_trusts_its_bundle_and_presents_its_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client = ca.issue_cert("me@corp.test")
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "me.pem"))
    hop = Hop("backend", TlsConfig(str(tmp_path / "ca.pem"), str(tmp_path / "me.pem")))
    assert hop.ssl.verify_mode == ssl.CERT_REQUIRED
    assert hop.ssl.check_hostname
    assert any(cert["subject"] for cert in hop.ssl.get_ca_certs())
    assert Hop("lab", TlsConfig(verify=False)).ssl.verify_mode == ssl.CERT_NONE


def test_tls_failures_are_found_behind_wrapping_exceptions() -> None:
    inner = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] nope")
    outer = RuntimeError("could not connect")
    outer.__cause__ = inner
    assert tls_failure(outer) is not None
    assert tls_failure(RuntimeError("refused")) is None


def test_tls_files_must_exist_and_a_key_needs_a_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"backend\.ca_bundle"):
        load_settings(
            None, **{**REQUIRED, "backend": {**REQUIRED["backend"], "ca_bundle": "/nope"}}
        )
    key = tmp_path / "k.pem"
    key.write_text("x")
    with pytest.raises(ConfigurationError, match=r"s3\.client_key"):
        load_settings(None, **{**REQUIRED, "s3": {"bucket": "b", "client_key": str(key)}})
    with pytest.raises(ConfigurationError, match=r"server"):
        load_settings(None, **REQUIRED, server={"tls_key_file": str(key)})
