"""A 400-file release end to end (issue #21, scale), against `twine upload` in the same run.

``release_400_files_gateway_s``: the bundled client (``upload-gateway publish``, a
subprocess, as a user runs it) uploads 400 small wheels of one release through the gateway
and waits until the session is published on the index. ``release_400_files_twine_s``:
`twine upload` of 400 other wheels of the same size (another version of the same project)
to the same pypiserver. ``release_400_files_ratio`` = gateway ÷ twine. With the gateway's
CPU seconds, its S3 calls per file and its index calls over the client's whole run, and the
CPU seconds SeaweedFS and pypiserver spent meanwhile (pypiserver's for twine's run too).
One round, twine first: the gateway then publishes onto the index already holding twine's
400 files, so the order cannot favour it.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.benchmarks.release import client_publish
from tests.benchmarks.stack import (
    Stack,
    alternate,
    backend_calls,
    cpu_of,
    delta,
    s3_calls,
    twine,
)
from tests.distributions import build_wheel

FILES = 400
PAYLOAD = 4 << 10
PROJECT = "bench-release400"


def _wheels(work: Path, version: str) -> list[Path]:
    """``FILES`` distinct wheels of one release: one valid platform tag each (10 CPython
    minors x 40 glibc versions), each with its own random payload."""
    tags = [
        f"cp3{minor}-cp3{minor}-manylinux_2_{glibc}_x86_64"
        for minor in range(8, 18)
        for glibc in range(17, 57)
    ]
    assert len(tags) == FILES
    return [build_wheel(work, PROJECT, version, tag=t, payload=os.urandom(PAYLOAD)) for t in tags]


def _client_publish(stack: Stack, paths: list[Path]) -> float:
    """Seconds ``upload-gateway publish`` takes to upload and publish ``paths``; fails unless
    the release ends published with every file."""
    elapsed, _ = client_publish(stack, paths)
    return elapsed


def _cpu(stack: Stack) -> dict[str, float]:
    return stack.cpu_seconds() | {"index": cpu_of(stack.index.process.pid)}


def measure(stack: Stack) -> dict[str, float]:
    work = stack.workdir / "release400"
    work.mkdir(exist_ok=True)
    through_gateway, by_twine = _wheels(work, "1.0"), _wheels(work, "2.0")
    figures: dict[str, float] = {}

    def gateway_side() -> None:
        s3_before, index_before = s3_calls(stack.api), backend_calls(stack.api)
        cpu_before = _cpu(stack)
        figures["release_400_files_gateway_s"] = _client_publish(stack, through_gateway)
        cpu = delta(_cpu(stack), cpu_before)
        figures["release_400_files_gateway_cpu_s"] = cpu.get("gateway", 0)
        figures["release_400_files_s3_cpu_s"] = cpu.get("s3", 0)
        figures["release_400_files_index_cpu_s_via_gateway"] = cpu.get("index", 0)
        s3 = delta(s3_calls(stack.api), s3_before)
        figures["release_400_files_s3_calls_per_file"] = sum(s3.values()) / FILES
        index = delta(backend_calls(stack.api), index_before)
        figures["release_400_files_index_calls"] = sum(index.values())
        print(f"  gateway: S3 calls {s3}, index calls {index}, CPU-s {cpu}", flush=True)

    def twine_side() -> None:
        index_before = cpu_of(stack.index.process.pid)
        figures["release_400_files_twine_s"] = twine(stack.index.url + "/", by_twine)
        index = cpu_of(stack.index.process.pid) - index_before
        figures["release_400_files_index_cpu_s_via_twine"] = index

    for run in alternate(0, twine_side, gateway_side):
        run()
    figures["release_400_files_ratio"] = (
        figures["release_400_files_gateway_s"] / figures["release_400_files_twine_s"]
    )
    print(
        f"  release of {FILES} files: gateway {figures['release_400_files_gateway_s']:.1f}s "
        f"({figures['release_400_files_gateway_cpu_s']:.1f} CPU-s), "
        f"twine {figures['release_400_files_twine_s']:.1f}s",
        flush=True,
    )
    for path in through_gateway + by_twine:
        path.unlink()
    return {name: round(value, 2) for name, value in figures.items()}
