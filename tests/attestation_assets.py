"""The real PEP 740 attestations under tests/assets/attestations (see its README)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).parent / "assets" / "attestations"
SDIST = ASSETS / "pypi_attestations-0.0.19.tar.gz"
SDIST_SHA256 = hashlib.sha256(SDIST.read_bytes()).hexdigest()
PROJECT, VERSION = "pypi-attestations", "0.0.19"
REPOSITORY, WORKFLOW = "trailofbits/pypi-attestations", "release.yml"


def attestation(name: str = SDIST.name) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((ASSETS / f"{name}.publish.attestation").read_text())
    return document


OTHER_FILE = "gitlab_oidc_project-0.0.3.tar.gz"
