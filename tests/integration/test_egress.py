"""No egress nobody configured: the dev stack talks to loopback only (issue 18, item 5).

SeaweedFS reports anonymous telemetry to an outside URL unless told not to. The probe runs
`upload-gateway dev` in a network namespace of its own whose only interface is loopback and
whose default route also points at loopback: the stack must come up and serve there, and a
connection (or DNS lookup) towards any other address would sit in the namespace's socket
tables, where the probe looks for it the whole time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.devstack import free_port
from gateway.protocol.media import UPLOAD_V2_JSON

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6", "/proc/net/udp", "/proc/net/udp6")
_LOOPBACK_OR_UNSET = (
    "0100007F",  # 127.0.0.1
    "00000000",  # no peer (listening, unconnected)
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
    "00000000000000000000000001000000",  # ::1
    "00000000000000000000000000000000",  # ::
)


def foreign_peers() -> set[str]:
    """Remote addresses (hex, as the kernel writes them) that are neither loopback nor unset."""
    found = set()
    for table in _TABLES:
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            remote = line.split()[2].partition(":")[0]
            if remote not in _LOOPBACK_OR_UNSET:
                found.add(f"{table}:{line.split()[2]}")
    return found


def test_seaweedfs_runs_with_telemetry_off(seaweedfs) -> None:  # type: ignore[no-untyped-def]
    # The live process's own command line, not the code that builds it.
    cmdline = Path(f"/proc/{seaweedfs.process.pid}/cmdline").read_bytes().split(b"\0")
    assert b"-master.telemetry=false" in cmdline


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
    reason="needs root, unshare and ip to make a network namespace",
)
def test_dev_stack_works_without_a_route_and_opens_no_foreign_connection(tmp_path: Path) -> None:
    script = (
        "ip link set lo up && ip route add default dev lo && "
        f"exec {sys.executable} -m tests.integration.test_egress {tmp_path / 'state'}"
    )
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=Path(__file__).parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["session_status"] == "open"
    assert report["samples"] > 10
    assert report["foreign_peers"] == []


def _probe(state: Path) -> dict[str, object]:
    """Inside the namespace: start the dev stack, use it, watch the socket tables."""
    port = free_port()
    dev = subprocess.Popen(
        [sys.executable, "-m", "gateway", "dev", "--state-dir", str(state), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: set[str] = set()
    samples = 0
    try:
        deadline = time.monotonic() + 120
        while not (state / "stack.json").exists():
            if dev.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the dev stack did not come up")
            seen |= foreign_peers()
            samples += 1
            time.sleep(0.2)
        stack = json.loads((state / "stack.json").read_text())
        status = _create_session(stack)
        for _ in range(25):  # and a few seconds more of a running stack
            seen |= foreign_peers()
            samples += 1
            time.sleep(0.2)
    finally:
        dev.send_signal(signal.SIGTERM)
        dev.wait(60)
    return {"session_status": status, "samples": samples, "foreign_peers": sorted(seen)}


def _create_session(stack: dict[str, str]) -> str:
    body = {"meta": {"api-version": "2.0"}, "name": "egress-check", "version": "1.0"}
    request = urllib.request.Request(
        stack["api"],
        data=json.dumps(body).encode(),
        headers={"Content-Type": UPLOAD_V2_JSON, "Authorization": stack["authorization"]},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["status"])


if __name__ == "__main__":
    print(json.dumps(_probe(Path(sys.argv[1]))), flush=True)
