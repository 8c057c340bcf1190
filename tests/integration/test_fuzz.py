"""Schemathesis against a real gateway process (real S3, real pypiserver): every operation in
the OpenAPI document, generated valid and invalid input; no 5xx, and every answer matches the
document (status codes, content types, schemas). ``make fuzz`` runs it longer."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from gateway.devstack import executable
from tests.conftest import ALICE

REPOSITORY = Path(__file__).resolve().parents[2]
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


async def test_no_server_errors_and_no_drift_from_the_document(
    replicas, project_name: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    replica = replicas("fuzz-" + project_name)
    process = await asyncio.create_subprocess_exec(
        executable("schemathesis"),
        "run",
        replica.api + "openapi.json",
        "--checks",
        CHECKS,
        "--header",
        f"Authorization: {ALICE.authorization}",
        "--max-examples",
        os.environ.get("FUZZ_EXAMPLES", "15"),
        "--seed",
        os.environ.get("FUZZ_SEED", "694"),
        "--request-timeout",
        "30",
        "--max-failures",
        "20",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,  # its example database stays out of the checkout
        env={
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.integration.fuzz_hooks",
            "PYTHONPATH": str(REPOSITORY),
            "NO_COLOR": "1",
        },
    )
    output, _ = await asyncio.wait_for(process.communicate(), 1200)
    text = output.decode(errors="replace")
    (tmp_path / "schemathesis.log").write_text(text)
    assert process.returncode == 0, text[-6000:]
