"""Profile the gateway process with py-spy under one workload, and print where its time goes.

    python -m tests.benchmarks.profile status|create|upload|release [--seconds 20] [--raw out.txt]

Starts the benchmark stack, drives the workload (``status``: 16 concurrent session-status
GETs; ``create``: 16 concurrent session creates; ``upload``: one 1 GiB ``http-post-bytes``
upload; ``release``: the bundled client publishing a release of 201 small files, as the
``release`` group does), samples the gateway with ``py-spy record --format raw`` and prints
the share of samples per package, per innermost frame, and inclusive per gateway function.
py-spy counts a thread as busy while it is runnable, so on a loaded machine samples include
time waiting for a core; ``--no-socket-writes`` leaves out the frames blocked in the
kernel's socket send.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import aiohttp

from tests.benchmarks import control, release, upload
from tests.benchmarks.stack import AUTHORIZATION, Stack, running_stack

PACKAGES = (
    "aiobotocore",
    "botocore",
    "aiohttp",
    "pydantic",
    "structlog",
    "prometheus_client",
    "dateutil",
    "gateway",
    "asyncio",
    "concurrent",
)


def _spy(pid: int, raw: Path, seconds: int | None) -> subprocess.Popen[bytes]:
    # py-spy is installed beside this interpreter (the venv's bin/, not always on PATH).
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    command = [spy, "record", "--pid", str(pid), "--format", "raw", "-o", str(raw)]
    command += ["--rate", "200", "--nonblocking", "--threads"]
    if seconds:
        command += ["--duration", str(seconds)]
    return subprocess.Popen(command)


async def _status(stack: Stack, raw: Path, seconds: int) -> None:
    async with aiohttp.ClientSession() as http:
        session = await control._new_session(http, stack.api, "bench-profile")
    url, auth = session["links"]["session"], {"Authorization": AUTHORIZATION}
    await control._rate(stack.gateway.pid, 1, lambda h, _: control._get_ok(h, url, auth))
    spy = _spy(stack.gateway.pid, raw, seconds)
    print(
        await control._rate(
            stack.gateway.pid, seconds + 2, lambda h, _: control._get_ok(h, url, auth)
        )
    )
    spy.wait()


async def _create(stack: Stack, raw: Path, seconds: int) -> None:
    async def create(http: aiohttp.ClientSession, number: int) -> bool:
        body = {"meta": control.META, "name": f"profile-{number}", "version": "1.0"}
        async with http.post(stack.api, json=body, headers=control.HEADERS) as response:
            await response.read()
            return response.status == 201

    spy = _spy(stack.gateway.pid, raw, seconds)
    print(await control._rate(stack.gateway.pid, seconds + 2, create))
    spy.wait()


async def _upload(stack: Stack, raw: Path, _: int) -> None:
    path = stack.workdir / "profile.bin"
    sha256 = upload.make_file(path, 1 << 30)
    spy = _spy(stack.gateway.pid, raw, None)
    print(f"upload took {await upload.gateway_upload(stack, path, sha256, '1.0', []):.1f}s")
    spy.send_signal(2)  # py-spy writes its output on SIGINT
    spy.wait()


async def _release(stack: Stack, raw: Path, _: int) -> None:
    work = stack.workdir / "profile-release"
    work.mkdir(exist_ok=True)
    paths = release.release_files(work, "9.0", 201)
    spy = _spy(stack.gateway.pid, raw, None)
    took, _outcome = await asyncio.to_thread(release.client_publish, stack, paths)
    print(f"201-file release took {took:.1f}s")
    spy.send_signal(2)  # py-spy writes its output on SIGINT
    spy.wait()


def summary(raw: Path, skip_socket_writes: bool, top: int = 25) -> str:
    total, innermost, packages, inclusive = 0, Counter[str](), Counter[str](), Counter[str]()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if skip_socket_writes and "_SelectorSocketTransport.write " in stack:
            continue
        frames, samples = stack.split(";"), int(count)
        total += samples
        innermost[frames[-1]] += samples
        file = re.search(r"\(([^()]*):\d+\)$", frames[-1])
        path = file.group(1) if file else frames[-1]
        package = next((p for p in PACKAGES if f"/{p}/" in path or path.startswith(p)), path)
        packages[package] += samples
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            if "(gateway/" in frame:
                inclusive[frame] += samples
    lines = [f"{total} samples"]
    for title, counter in (
        ("self time by package", packages),
        ("self time by innermost frame", innermost),
        ("inclusive time, gateway functions", inclusive),
    ):
        lines.append(f"--- {title}")
        lines += [f"{100 * n / total:5.1f}% {name}" for name, n in counter.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload", choices=["status", "create", "upload", "release"])
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--raw", type=Path, help="keep py-spy's raw output here")
    parser.add_argument("--no-socket-writes", action="store_true")
    args = parser.parse_args()
    workloads = {"status": _status, "create": _create, "upload": _upload, "release": _release}
    work = workloads[args.workload]
    with tempfile.TemporaryDirectory(prefix="gateway-profile-") as workdir:
        raw = args.raw or Path(workdir) / "profile.txt"
        with running_stack(Path(workdir) / "stack") as stack:
            asyncio.run(work(stack, raw, args.seconds))
        print(summary(raw, args.no_socket_writes))


if __name__ == "__main__":
    main()
