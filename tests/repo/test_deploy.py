"""The deployment files: every manifest validates against the Kubernetes schemas (offline),
the Dockerfile passes hadolint, and the manifests agree with the gateway's settings."""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from gateway.devstack import executable
from gateway.settings import Settings

DEPLOY = Path(__file__).parents[2] / "deploy"
KUBERNETES_VERSION = "1.30.0"
SETUPS = sorted(p for p in (DEPLOY / "kubernetes").iterdir() if p.is_dir())


def documents(setup: Path) -> list[dict]:  # type: ignore[type-arg]
    kustomization = yaml.safe_load((setup / "kustomization.yaml").read_text())
    docs = []
    for resource in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((setup / resource).read_text()) if d]
    return docs


@pytest.mark.parametrize("setup", SETUPS, ids=lambda p: p.name)
def test_every_manifest_is_valid(setup: Path) -> None:
    listed = set(yaml.safe_load((setup / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in setup.glob("*.yaml")} - {"kustomization.yaml"}
    for document in documents(setup):
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("setup", SETUPS, ids=lambda p: p.name)
def test_manifests_agree_with_the_gateway(setup: Path) -> None:
    docs = {d["kind"]: d for d in documents(setup)}
    config = tomllib.loads(docs["ConfigMap"]["data"]["gateway.toml"])
    settings = Settings(**config)  # the shipped configuration is valid
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > settings.server.drain_timeout
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["securityContext"]["readOnlyRootFilesystem"] is True
    assert gateway["securityContext"]["allowPrivilegeEscalation"] is False
    assert gateway["resources"]["requests"]
    assert gateway["resources"]["limits"]
    assert gateway["ports"][0]["containerPort"] == settings.server.port


def test_standalone_is_highly_available() -> None:
    docs = {d["kind"]: d for d in documents(DEPLOY / "kubernetes" / "standalone")}
    assert docs["Deployment"]["spec"]["replicas"] >= 2
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    # R-W12: the pod keeps serving while load balancers forget it, then drains within grace.
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    gateway = next(c for c in pod["containers"] if c["name"] == "gateway")
    pre_stop = gateway["lifecycle"]["preStop"]["sleep"]["seconds"]
    config = tomllib.loads(docs["ConfigMap"]["data"]["gateway.toml"])
    drain = Settings(**config).server.drain_timeout
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain + 5
    assert docs["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [executable("hadolint"), str(DEPLOY / "Dockerfile")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = (DEPLOY / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert 'ENTRYPOINT ["upload-gateway", "serve"]' in text
    assert text.count("FROM ") >= 2  # multi-stage: no build tools in the final image
