"""Staged legacy upload figures (issue #17), against the bundled client on the same gateway.

legacy_staged_throughput_ratio = MiB/s of `twine upload` of a 200 MiB wheel to the staging
URL ({legacy_path}+stage/) ÷ MiB/s of the same file sent with http-post-bytes by the bundled
client (both as subprocesses, both hashing the file first, both creating the session and
completing the file), alternating which goes first; legacy_staged_rss_growth_mib = the
gateway's RSS growth during the staged twine uploads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.benchmarks.stack import AUTHORIZATION, Stack, alternate, twine
from tests.distributions import build_wheel

# The bundled client, held to http-post-bytes (it would pick a vnd mechanism for a big file).
_CLIENT = """
import asyncio, hashlib, sys
from pathlib import Path
from gateway.client.api import UploadClient

async def main(api: str, authorization: str, path: Path) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(1 << 20):
            digest.update(block)
    name, version = path.name.split("-")[:2]
    async with UploadClient(api, authorization=authorization, resumable_above=1 << 62) as client:
        session, _ = await client.create_session(name, version)
        await client.upload_file(
            session, path, size=path.stat().st_size, hashes={"sha256": digest.hexdigest()}
        )

asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
"""


def bundled_client(stack: Stack, path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _CLIENT, stack.api, AUTHORIZATION, str(path)],
        check=True,
        capture_output=True,
        env={**os.environ},
    )
    return time.perf_counter() - started


def cancel_release(stack: Stack, name: str, version: str = "1.0") -> None:
    """Cancel the release's session (found by create → 409 + Location), freeing its bytes."""
    body = json.dumps({"meta": {"api-version": "2.0"}, "name": name, "version": version})
    headers = {
        "Authorization": AUTHORIZATION,
        "Content-Type": "application/vnd.pypi.upload.v2+json",
    }
    create = urllib.request.Request(stack.api, body.encode(), headers, method="POST")
    try:
        with urllib.request.urlopen(create, timeout=30) as response:
            location = response.headers["Location"]
    except urllib.error.HTTPError as refused:
        location = refused.headers["Location"]
    urllib.request.urlopen(urllib.request.Request(location, headers=headers, method="DELETE"))


def measure(stack: Stack, rounds: int, size: int = 200 << 20) -> dict[str, float]:
    work = stack.workdir / "staged"
    work.mkdir(exist_ok=True)
    stage_url = stack.api.replace("/upload/2.0/", "/legacy/+stage/")
    warm = build_wheel(work, "bench-staged-warm", "1.0", payload=os.urandom(32 << 20))
    twine(stage_url, [warm])  # loads what the first staged upload loads: not per-upload memory
    cancel_release(stack, "bench-staged-warm")
    baseline = stack.gateway_rss_kib()
    staged, client, growth = [], [], []
    cpu: dict[str, float] = {}  # the gateway's CPU seconds per side, this round
    for r in range(rounds):
        name = f"bench-staged-{r}"
        wheel = build_wheel(work, name, "1.0", payload=os.urandom(size))
        peak = [baseline]

        def via_twine(wheel: Path = wheel, peak: list[int] = peak, name: str = name) -> None:
            done = threading.Event()
            sampler = threading.Thread(target=_sample, args=(stack, peak, done))
            sampler.start()
            before = stack.cpu_seconds()["gateway"]
            try:
                staged.append(wheel.stat().st_size / twine(stage_url, [wheel]))
                cpu["twine"] = stack.cpu_seconds()["gateway"] - before
            finally:
                done.set()
                sampler.join()
            cancel_release(stack, name)

        def via_client(wheel: Path = wheel, name: str = name) -> None:
            before = stack.cpu_seconds()["gateway"]
            client.append(wheel.stat().st_size / bundled_client(stack, wheel))
            cpu["client"] = stack.cpu_seconds()["gateway"] - before
            cancel_release(stack, name)

        for run in alternate(r, via_twine, via_client):
            run()
        growth.append(max(peak) - baseline)
        print(
            f"  staged round {r}: twine to the staging URL {staged[-1] / 2**20:.0f} MiB/s "
            f"(gateway cpu {cpu['twine']:.1f}s), bundled client (http-post-bytes) "
            f"{client[-1] / 2**20:.0f} MiB/s (gateway cpu {cpu['client']:.1f}s), "
            f"gateway RSS +{growth[-1] / 1024:.0f} MiB",
            flush=True,
        )
        wheel.unlink()
    return {
        "legacy_staged_throughput_ratio": round(max(staged) / max(client), 3),
        "legacy_staged_twine_mib_s": round(max(staged) / 2**20, 1),
        "legacy_staged_client_mib_s": round(max(client) / 2**20, 1),
        "legacy_staged_rss_growth_mib": round(max(growth) / 1024, 1),
    }


def _sample(stack: Stack, peak: list[int], done: threading.Event) -> None:
    while not done.is_set():
        peak.append(stack.gateway_rss_kib())
        time.sleep(0.05)
