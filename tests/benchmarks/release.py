"""Releases of many files (issue #26, R-W13), each against `twine upload` in the same run.

For 51 and 401 files (small wheels, one platform tag each, and an sdist):

- ``release_{n}_ratio``: the bundled client (``upload-gateway publish --protocol 2``, a
  subprocess, as a user runs it) until the release is published ÷ `twine upload` of the same
  number of files of another version straight to the same pypiserver (goals ≤ 1.3 and 1.5);
- ``release_{n}_gateway_cpu_ms_per_file``: the gateway's CPU over the client's run, from
  ``/proc``, per file (goal ≤ 5 ms, and the 401 figure ≤ 1.2 times the 51 one);
- ``release_s3_calls_per_file`` and ``release_index_calls_per_file``: of the 401-file run,
  from the gateway's ``/metrics`` (goals ≤ 10 and ≤ 1.05);
- ``stage_51_ratio``: ``publish --stage`` of 51 files (it returns once every file is
  completed: the stage serves them) ÷ twine's upload of 51 files to the index (goal ≤ 1.0);
- ``legacy_stage_51_ratio``: `twine upload` of 51 files to the staging URL ÷ to the index
  (goal ≤ 1.3);
- ``release_{n}_floor_ratio`` and ``stage_51_floor_ratio``: the same job done by the simplest
  program (``bare_release``: each file put in S3, then read back and posted to the index) ÷
  twine: the least that staging a release in S3 adds on this machine, so the goals above can
  be read against it; ``release_{n}_over_floor`` and ``stage_51_over_floor``: the gateway ÷ it;
- ``release_{n}_client_cpu_ms_per_file``: the bundled client's own CPU (with the S3, index and
  gateway figures, where the machine's two cores went).

One run each, twine first. The machine's two cores are shared with SeaweedFS and pypiserver
(and, while this was written, other engineers' work): the wall-clock ratios move by ±20 %
between runs, the CPU figures by a few per cent.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from tests.benchmarks.stack import (
    BUCKET,
    PASSWORD,
    USER,
    Stack,
    backend_calls,
    cpu_of,
    delta,
    s3_calls,
    twine,
)
from tests.benchmarks.staged import cancel_release
from tests.distributions import build_sdist, build_wheel

PAYLOAD = 4 << 10
PROJECT = "bench-release"


def release_files(work: Path, version: str, files: int) -> list[Path]:
    """``files`` distributions of one release: ``files - 1`` wheels of distinct platform tags
    (CPython minors x glibc versions), each with its own random payload, and an sdist."""
    tags = [
        f"cp3{minor}-cp3{minor}-manylinux_2_{glibc}_x86_64"
        for minor in range(8, 18)
        for glibc in range(17, 57)
    ][: files - 1]
    wheels = [
        build_wheel(work, PROJECT, version, tag=tag, payload=os.urandom(PAYLOAD)) for tag in tags
    ]
    return [*wheels, build_sdist(work, PROJECT, version)]


def client_publish(
    stack: Stack, paths: list[Path], *options: str
) -> tuple[float, dict[str, object]]:
    """Seconds ``upload-gateway publish`` takes for ``paths``, and its JSON outcome; fails
    unless every file completed (and, without ``--stage``, the release was published)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TWINE_", "UPLOAD_GATEWAY_", "ACTIONS_ID_TOKEN_"))
    }
    env["UPLOAD_GATEWAY_STATE_FILE"] = str(stack.workdir / "client-sessions.json")
    command = [sys.executable, "-m", "gateway", "publish", "--repository-url", stack.api]
    command += ["-u", USER, "-p", PASSWORD, "--protocol", "2", "--quiet", "--json", *options]
    started = time.perf_counter()
    done = subprocess.run(
        [*command, *map(str, paths)], capture_output=True, env=env, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"upload-gateway publish: {done.returncode} {done.stderr[-2000:]}")
    outcome = json.loads(done.stdout)
    files = outcome["files"]
    completed = [f for f, entry in files.items() if entry["status"] == "completed"]
    wanted = "staged" if "--stage" in options else "published"
    if len(completed) != len(paths) or (wanted == "published" and outcome["status"] != wanted):
        raise RuntimeError(f"release not {wanted} whole: {done.stdout[:2000]}")
    return elapsed, outcome


def _cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far of the gateway, SeaweedFS, the index, and of the subprocesses this
    process has waited for (the client, twine, the bare program)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = {"client": children.ru_utime + children.ru_stime}
    return stack.cpu_seconds() | {"index": cpu_of(stack.index.process.pid)} | client


def bare_release(stack: Stack, paths: list[Path], *options: str) -> float:
    """Seconds the simplest program takes to stage ``paths`` in S3 and put them on the index
    (``--stage-only``: to stage them)."""
    command = [sys.executable, "-m", "tests.benchmarks.bare_release", "--s3", stack.s3.url]
    command += ["--bucket", BUCKET, "--index", stack.index.url + "/"]
    command += ["--username", USER, "--password", PASSWORD, *options, *map(str, paths)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def _release_figures(stack: Stack, work: Path, files: int) -> dict[str, float]:
    twine_before = twine(stack.index.url + "/", release_files(work, f"2.{files}", files))
    cpu_before = _cpu(stack)
    floor_s = bare_release(stack, release_files(work, f"0.{files}", files))
    floor_cpu = delta(_cpu(stack), cpu_before)
    paths = release_files(work, f"1.{files}", files)
    s3_before, index_before, cpu_before = s3_calls(stack.api), backend_calls(stack.api), _cpu(stack)
    gateway_s, _ = client_publish(stack, paths)
    cpu = delta(_cpu(stack), cpu_before)
    s3 = delta(s3_calls(stack.api), s3_before)
    index = delta(backend_calls(stack.api), index_before)
    # pypiserver slows down as it fills up (each upload and listing looks at every file it
    # holds): twine runs before and after the others, and its mean is the baseline.
    twine_after = twine(stack.index.url + "/", release_files(work, f"4.{files}", files))
    twine_s = (twine_before + twine_after) / 2
    print(
        f"  {files} files: twine {twine_before:.2f}s then {twine_after:.2f}s, "
        f"bare {floor_s:.2f}s, gateway {gateway_s:.2f}s",
        flush=True,
    )
    print(f"    S3 calls {s3}\n    index calls {index}\n    CPU-s {cpu}", flush=True)
    print(f"    bare program's CPU-s {floor_cpu}", flush=True)
    return {
        f"release_{files}_twine_s": twine_s,
        f"release_{files}_gateway_s": gateway_s,
        f"release_{files}_ratio": gateway_s / twine_s,
        f"release_{files}_floor_s": floor_s,
        f"release_{files}_floor_ratio": floor_s / twine_s,
        f"release_{files}_over_floor": gateway_s / floor_s,
        f"release_{files}_client_cpu_ms_per_file": 1000 * cpu.get("client", 0) / files,
        f"release_{files}_floor_s3_cpu_ms_per_file": 1000 * floor_cpu.get("s3", 0) / files,
        f"release_{files}_gateway_cpu_ms_per_file": 1000 * cpu.get("gateway", 0) / files,
        f"release_{files}_s3_cpu_ms_per_file": 1000 * cpu.get("s3", 0) / files,
        f"release_{files}_index_cpu_ms_per_file": 1000 * cpu.get("index", 0) / files,
        f"release_{files}_s3_calls_per_file": sum(s3.values()) / files,
        f"release_{files}_index_calls_per_file": sum(index.values()) / files,
    }


def _stage_figures(stack: Stack, work: Path, twine_s: float) -> dict[str, float]:
    cpu_before = _cpu(stack)
    stage_s, _ = client_publish(stack, release_files(work, "3.0", 51), "--stage")
    cpu = delta(_cpu(stack), cpu_before)
    cancel_release(stack, PROJECT, "3.0")
    floor_s = bare_release(stack, release_files(work, "3.1", 51), "--stage-only")
    stage_url = stack.api.replace("/upload/2.0/", "/legacy/+stage/")
    to_index = twine(stack.index.url + "/", release_files(work, "6.0", 51))
    cpu_before = _cpu(stack)
    to_stage = twine(stage_url, release_files(work, "5.0", 51))
    legacy_cpu = delta(_cpu(stack), cpu_before)
    cancel_release(stack, PROJECT, "5.0")
    print(
        f"  stage 51: client --stage {stage_s:.2f}s, bare {floor_s:.2f}s; "
        f"twine to the staging URL {to_stage:.2f}s, "
        f"to the index {to_index:.2f}s",
        flush=True,
    )
    return {
        "stage_51_s": stage_s,
        "stage_51_ratio": stage_s / twine_s,
        "stage_51_floor_ratio": floor_s / twine_s,
        "stage_51_over_floor": stage_s / floor_s,
        "stage_51_gateway_cpu_ms_per_file": 1000 * cpu.get("gateway", 0) / 51,
        "legacy_stage_51_s": to_stage,
        "legacy_stage_51_ratio": to_stage / to_index,
        "legacy_stage_51_gateway_cpu_ms_per_file": 1000 * legacy_cpu.get("gateway", 0) / 51,
    }


def measure(stack: Stack) -> dict[str, float]:
    work = stack.workdir / "release"
    work.mkdir(exist_ok=True)
    figures: dict[str, float] = {}
    for files in (51, 401):
        figures |= _release_figures(stack, work, files)
    figures |= _stage_figures(stack, work, figures["release_51_twine_s"])
    figures["release_s3_calls_per_file"] = figures["release_401_s3_calls_per_file"]
    figures["release_index_calls_per_file"] = figures["release_401_index_calls_per_file"]
    figures["release_cpu_401_over_51"] = (
        figures["release_401_gateway_cpu_ms_per_file"]
        / figures["release_51_gateway_cpu_ms_per_file"]
    )
    for path in work.iterdir():
        path.unlink()
    return {name: round(value, 3) for name, value in figures.items()}
