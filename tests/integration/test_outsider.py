"""The served OpenAPI document is enough for an outside tool (issue #15): the schemathesis CLI
run as an operator would run it — the document's URL, a credential and the tool's own settings
file, no hooks —
against a real gateway (real SeaweedFS, real pypiserver). Its stateful phase follows the
document's links from a new session down to the file upload sessions and the stage.

It must exit 0 (no 5xx, every answer as documented) and get at least one answer other than
404 from every operation (an operation only ever answered 404 was never really reached),
except the stage's file download, which needs a completed distribution, and a published
file's provenance, which needs a signed attestation (UNREACHABLE below). The tool's own
settings file lengthens its walks and keeps them on the document's links: an operator's
choice, not code."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
from pathlib import Path
from typing import Any

import aiohttp

from gateway.devstack import executable
from tests.conftest import ALICE
from tests.integration.conftest import Api

# The tool's own settings an operator would choose for a stateful API: walks long enough to
# go session → file → bytes → complete → stage, following the document's links only (its
# guesses from Location headers mostly meet made-up ids).
TOOL_SETTINGS = """
[phases.stateful]
max-steps = 16

[phases.stateful.inference]
algorithms = []
"""

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def outsider_command(document_url: str, report: Path) -> list[str]:
    return [
        executable("schemathesis"),
        "run",
        document_url,
        "--header",
        f"Authorization: {ALICE.authorization}",
        "--checks",
        CHECKS,
        # The budget: examples and the coverage phase touch every operation; the rest of the
        # time goes to the stateful walks that follow the links.
        "--phases",
        "examples,coverage,stateful",
        "--max-examples",
        os.environ.get("OUTSIDER_EXAMPLES", "10"),
        "--max-time",
        os.environ.get("OUTSIDER_SECONDS", "45"),
        "--seed",
        os.environ.get("FUZZ_SEED", "694"),
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]


def statuses_by_operation(
    document: dict[str, Any], report: Path
) -> dict[str, collections.Counter[int]]:
    """operationId → how often each status was answered, from schemathesis' NDJSON events."""
    operations = [
        (
            method.upper(),
            re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$"),
            op["operationId"],
        )
        for path, item in document["paths"].items()
        for method, op in item.items()
        if method != "parameters"
    ]
    seen: dict[str, collections.Counter[int]] = {op: collections.Counter() for *_, op in operations}
    for line in report.read_text().splitlines():
        scenario = json.loads(line).get("ScenarioFinished")
        if not scenario:
            continue
        for interaction in scenario["recorder"].get("interactions", {}).values():
            request, response = interaction["request"], interaction.get("response")
            if response is None:
                continue
            path = "/" + request["uri"].split("/", 3)[3].split("?")[0]
            for method, pattern, operation_id in operations:
                if method == request["method"] and pattern.match(path):
                    seen[operation_id][response["status_code"]] += 1
                    break
    return seen


async def test_schemathesis_walks_the_api_from_the_document_alone(
    live_gateway, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    api: Api = await live_gateway(sessions={"max_open_per_principal": 10_000})
    document_url = f"{api.base}{api.root}openapi.json"
    async with aiohttp.ClientSession() as http, http.get(document_url) as response:
        document = await response.json()
    report = tmp_path / "events.ndjson"
    (tmp_path / "schemathesis.toml").write_text(TOOL_SETTINGS)
    process = await asyncio.create_subprocess_exec(
        *outsider_command(document_url, report),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,  # its example database stays out of the checkout
        env={**os.environ, "NO_COLOR": "1", "SCHEMATHESIS_HOOKS": ""},
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    text = output.decode(errors="replace")
    (tmp_path / "schemathesis.log").write_text(text)
    assert process.returncode == 0, text[-6000:]
    seen = statuses_by_operation(document, report)
    server_errors = {op: dict(s) for op, s in seen.items() if any(code >= 500 for code in s)}
    assert server_errors == {}
    # schemathesis loads the document from this operation and never tests it.
    seen["openapi"][200] += 1
    summary = json.dumps({op: dict(statuses) for op, statuses in seen.items()}, indent=1)
    (tmp_path / "statuses.json").write_text(summary)
    only_404 = {op for op, statuses in seen.items() if set(statuses) <= {404}}
    assert only_404 - UNREACHABLE == set(), summary
    # The links reach files: walks create file upload sessions (3-10 per run in this budget).
    assert seen["createFile"][202] > 0, summary


# The one operation a generic tool cannot reach: the stage serves only *completed* files, and
# completing one takes the exact bytes of a valid sdist or wheel (whose sha256 the create
# request declared and whose PKG-INFO names the session's release), which a generator never
# produces and which OpenAPI examples cannot carry (a tool sends them as UTF-8 text; a gzip or
# zip is not). Every other operation, file operations included, must answer something else
# than 404 at least once. Likewise a file's provenance (R-W11): the gateway keeps one only for a
# file published with an attestation that Sigstore verifies, which no generator can sign.
UNREACHABLE = {"stageFile", "getProvenance"}
