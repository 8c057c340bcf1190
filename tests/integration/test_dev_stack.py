"""`upload-gateway dev`: the whole local stack comes up, works, and stops with no orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from gateway.devstack import free_port
from gateway.protocol.media import UPLOAD_V2_JSON


def processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_dev_stack_serves_and_stops_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "dev", "--state-dir", str(state), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        stack_file = state / "stack.json"
        deadline = time.monotonic() + 90
        while not stack_file.exists():
            assert process.poll() is None, process.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the dev stack did not come up"
            time.sleep(0.2)
        stack = json.loads(stack_file.read_text())
        assert set(stack) >= {
            "api",
            "legacy",
            "legacy_stage",
            "simple",
            "proxy_simple",
            "authorization",
            "s3_endpoint",
        }

        request = urllib.request.Request(
            stack["api"],
            data=json.dumps(
                {"meta": {"api-version": "2.0"}, "name": "dev-check", "version": "1.0"}
            ).encode(),
            headers={"Content-Type": UPLOAD_V2_JSON, "Authorization": stack["authorization"]},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            assert json.loads(response.read())["status"] == "open"
        # The dev credential may read the audit journal, which has the session just created.
        journal = urllib.request.Request(
            stack["api"] + "audit?project=dev-check",
            headers={"Authorization": stack["authorization"]},
        )
        with urllib.request.urlopen(journal, timeout=10) as response:
            actions = [event["action"] for event in json.loads(response.read())["events"]]
            assert "session.created" in actions
        # The same credential works on the backing index.
        upload_probe = urllib.request.Request(
            stack["legacy"], data=b"", headers={"Authorization": stack["authorization"]}
        )
        assert _status(upload_probe) not in (401, 403)
        stage_probe = urllib.request.Request(
            stack["legacy_stage"], data=b"", headers={"Authorization": stack["authorization"]}
        )
        assert _status(stage_probe) == 400  # served: an empty body is no legacy form
        # The read path is on: the index's root as PEP 691 JSON (R-W10).
        root = urllib.request.Request(
            stack["proxy_simple"], headers={"Accept": "application/vnd.pypi.simple.v1+json"}
        )
        with urllib.request.urlopen(root, timeout=10) as response:
            assert json.loads(response.read())["meta"]["api-version"] == "1.1"
        assert processes_mentioning(str(state))  # SeaweedFS and pypiserver are running
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert not stack_file.exists()
    assert processes_mentioning(str(state)) == [], "orphan processes left behind"
    assert os.listdir(state / "s3")  # data stays for the next run


def _status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
