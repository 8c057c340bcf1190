"""The vnd mechanisms against http-post-bytes, measured alternately in one run (issue #11).

resumable_throughput_ratio = MiB/s of one ``vnd-uploadgateway-resumable-v1`` PATCH carrying the
whole file ÷ MiB/s of one http-post-bytes POST, both until the gateway has committed the bytes
with their digests.

presigned_gateway_cpu_share = the gateway's CPU-seconds for a ``vnd-uploadgateway-s3-presigned-v1``
upload (parts PUT straight to SeaweedFS, then complete: finish the multipart upload and read the
object back to verify it) ÷ its CPU-seconds for the same file through http-post-bytes.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.benchmarks.stack import HEADERS, META, Stack
from tests.benchmarks.upload import make_file, post_bytes, send_file, start_upload


async def patch_resumable(http: aiohttp.ClientSession, file: dict[str, Any], path: Path) -> None:
    headers = {
        "Content-Type": "application/partial-upload",
        "Upload-Offset": "0",
        "Upload-Complete": "?1",
    }
    await send_file(http, "PATCH", file["mechanism"]["upload_url"], path, 204, **headers)


async def put_presigned(http: aiohttp.ClientSession, file: dict[str, Any], path: Path) -> None:
    mechanism = file["mechanism"]
    part_size = mechanism["part_size"]
    limit = asyncio.Semaphore(2)

    async def put(part: dict[str, Any]) -> None:
        async with limit:
            with path.open("rb") as source:
                source.seek((part["number"] - 1) * part_size)
                data = source.read(part_size)
            async with http.put(part["url"], data=data) as response:
                assert response.status == 200, await response.text()

    await asyncio.gather(*(put(part) for part in mechanism["parts"]))
    # Complete: finish the multipart upload, read the object back, check size and sha256. The
    # benchmark's bytes are no wheel, so the archive check that follows refuses them (400).
    async with http.post(file["links"]["complete"], json={"meta": META}, headers=HEADERS) as done:
        document = await done.json(content_type=None)
        assert "invalid-distribution" in document.get("type", ""), document


async def _timed(stack: Stack, work) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    cpu = stack.cpu_seconds()["gateway"]
    started = time.perf_counter()
    await work
    return time.perf_counter() - started, stack.cpu_seconds()["gateway"] - cpu


async def measure(stack: Stack, size: int, rounds: int) -> dict[str, float]:
    path = stack.workdir / "mechanisms.bin"
    sha256 = make_file(path, size)
    mib = size / (1 << 20)
    runs = {"http-post-bytes": post_bytes, "resumable": patch_resumable, "presigned": put_presigned}
    identifiers = {
        "http-post-bytes": "http-post-bytes",
        "resumable": "vnd-uploadgateway-resumable-v1",
        "presigned": "vnd-uploadgateway-s3-presigned-v1",
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for round_number in range(rounds):
            line = []
            for name, run in runs.items():
                version = f"{round_number}.{len(seconds[name])}+{name.replace('-', '')}"
                session, file = await start_upload(
                    http, stack, "bench-mechanisms", version, path, sha256, identifiers[name]
                )
                elapsed, used = await _timed(stack, run(http, file, path))
                seconds[name].append(elapsed)
                cpu[name].append(used)
                line.append(f"{name} {mib / elapsed:.0f} MiB/s, gateway cpu {used:.1f}s")
                async with http.delete(session["links"]["session"], headers=HEADERS):
                    pass
            print(f"  round {round_number}: " + "; ".join(line), flush=True)
    path.unlink()
    shares = [p / h for p, h in zip(cpu["presigned"], cpu["http-post-bytes"], strict=True)]
    return {
        "resumable_throughput_ratio": round(
            min(seconds["http-post-bytes"]) / min(seconds["resumable"]), 3
        ),
        "presigned_gateway_cpu_share": round(statistics.median(shares), 3),
        "presigned_gateway_cpu_s_per_gib": round(
            statistics.median(cpu["presigned"]) / (size / (1 << 30)), 2
        ),
        "http_post_bytes_gateway_cpu_s_per_gib": round(
            statistics.median(cpu["http-post-bytes"]) / (size / (1 << 30)), 2
        ),
    }
