"""http-post-bytes throughput and gateway memory versus a direct aiobotocore upload (issue #3).

upload_throughput_ratio = gateway MiB/s ÷ direct multipart MiB/s to the same SeaweedFS, the two
measured alternately in one run; upload_rss_growth_mib = the gateway's RSS growth during its
uploads.

CPU per GiB (issue #21), from /proc for the gateway process and from this process's own CPU
time for the direct driver, which runs here with the gateway's own S3 client configuration
(``open_client`` → ``client_config``), so botocore settings weigh the same on both sides:
upload_gateway_cpu_ratio = gateway CPU-s/GiB ÷ driver CPU-s/GiB, and
upload_gateway_overhead_sha256_units = (gateway - driver CPU-s/GiB) ÷ the CPU-s/GiB of one
hashlib sha256 pass over the same bytes, timed in the same round.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp

from gateway.settings import S3Settings
from gateway.store.blobs import BlobStore
from gateway.store.s3 import ensure_bucket, open_client
from tests import wire
from tests.benchmarks.stack import AUTHORIZATION, BUCKET, UPLOAD_V2, Stack

CHUNK = 1 << 20
PART_SIZE = 8 << 20  # the gateway's default s3.part_size, so both sides send the same parts


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(16 << 20)
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            out.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()


async def file_chunks(path: Path):  # type: ignore[no-untyped-def]
    with path.open("rb") as source:
        while chunk := source.read(CHUNK):
            yield chunk


async def start_upload(
    http: aiohttp.ClientSession,
    stack: Stack,
    project: str,
    version: str,
    path: Path,
    sha256: str,
    mechanism: str = "http-post-bytes",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A publishing session for ``project`` and a file upload session of ``path`` in it."""
    session = await wire.create_session(http, stack.api, project, version, AUTHORIZATION)
    filename = f"{project.replace('-', '_')}-{version}-py3-none-any.whl"
    size, hashes = path.stat().st_size, {"sha256": sha256}
    body = wire.file_body(filename, size=size, hashes=hashes, mechanism=mechanism)
    return session, await wire.create_file(http, session, body, AUTHORIZATION)


async def send_file(
    http: aiohttp.ClientSession, method: str, url: str, path: Path, status: int, **headers: str
) -> None:
    """Stream ``path`` as the body of one request, as a client uploading a large file does."""
    headers = {
        "Authorization": AUTHORIZATION,
        "Content-Length": str(path.stat().st_size),
        **headers,
    }
    async with http.request(method, url, data=file_chunks(path), headers=headers) as response:
        assert response.status == status, await response.text()


async def post_bytes(http: aiohttp.ClientSession, file: dict[str, Any], path: Path) -> None:
    url = file["mechanism"]["file_url"]
    await send_file(http, "POST", url, path, 200, **{"Content-Type": "application/octet-stream"})


async def gateway_upload(
    stack: Stack, path: Path, sha256: str, version: str, peak: list[int]
) -> float:
    headers = {"Authorization": AUTHORIZATION, "Content-Type": UPLOAD_V2}
    async with aiohttp.ClientSession() as http:
        session, file = await start_upload(http, stack, "bench-upload", version, path, sha256)
        sampling = asyncio.create_task(_sample_rss(stack, peak))
        started = time.perf_counter()
        await post_bytes(http, file, path)
        elapsed = time.perf_counter() - started
        sampling.cancel()
        async with http.delete(session["links"]["session"], headers=headers):
            pass
    return elapsed


async def _sample_rss(stack: Stack, peak: list[int]) -> None:
    while True:
        peak.append(stack.gateway_rss_kib())
        await asyncio.sleep(0.05)


async def direct_upload(stack: Stack, path: Path, key: str, part_size: int) -> float:
    settings = S3Settings(
        endpoint_url=stack.s3.url,
        bucket=BUCKET,
        access_key_id="bench",
        secret_access_key="bench-secret",
    )
    async with open_client(settings.store_config()) as client:
        await ensure_bucket(client, BUCKET, create=True)
        blobs = BlobStore(client, BUCKET, "direct/")
        started = time.perf_counter()
        writer = blobs.multipart(key)
        with path.open("rb") as source:
            while part := source.read(part_size):
                await writer.add_part(part)
        await writer.complete()
        elapsed = time.perf_counter() - started
        await blobs.delete(key)
    return elapsed


def sha256_cpu_seconds(path: Path) -> float:
    """CPU seconds of one sha256 pass over the file's bytes (the hashing only, not the reads)."""
    digest, cpu = hashlib.sha256(), 0.0
    with path.open("rb") as source:
        while chunk := source.read(PART_SIZE):
            started = time.process_time()
            digest.update(chunk)
            cpu += time.process_time() - started
    return cpu


def _cpu_figures(gateway: list[float], driver: list[float], sha: list[float]) -> dict[str, float]:
    """Per-GiB figures, each round's gateway side against that same round's baselines."""
    units = [(g - d) / h for g, d, h in zip(gateway, driver, sha, strict=True)]
    ratios = [g / d for g, d in zip(gateway, driver, strict=True)]
    return {
        "upload_gateway_overhead_sha256_units": round(statistics.median(units), 2),
        "upload_gateway_overhead_sha256_units_min": round(min(units), 2),
        "upload_gateway_overhead_sha256_units_max": round(max(units), 2),
        "upload_gateway_cpu_ratio": round(statistics.median(ratios), 2),
        "upload_gateway_cpu_ratio_min": round(min(ratios), 2),
        "upload_gateway_cpu_ratio_max": round(max(ratios), 2),
        "upload_gateway_cpu_s_per_gib": round(statistics.median(gateway), 2),
        "upload_driver_cpu_s_per_gib": round(statistics.median(driver), 2),
        "upload_sha256_cpu_s_per_gib": round(statistics.median(sha), 3),
    }


async def measure(stack: Stack, size: int, rounds: int) -> dict[str, float]:
    path = stack.workdir / "upload.bin"
    sha256 = make_file(path, size)
    mib = size / (1 << 20)
    # Warm up first: the first multipart upload loads botocore's models and starts threads,
    # which is start-up cost, not per-upload memory.
    warm = stack.workdir / "warm.bin"
    await gateway_upload(stack, warm, make_file(warm, 32 << 20), "0.0", [])
    warm.unlink()
    baseline_rss = stack.gateway_rss_kib()
    gateway_times, direct_times, rss = [], [], []
    gateway_cpu, driver_cpu, sha_cpu = [], [], []
    gib = size / (1 << 30)
    for round_number in range(rounds):
        sha_cpu.append(sha256_cpu_seconds(path) / gib)
        cpu_before, driver_before = stack.cpu_seconds(), time.process_time()
        direct_times.append(await direct_upload(stack, path, f"r{round_number}", PART_SIZE))
        driver_cpu.append((time.process_time() - driver_before) / gib)
        cpu_between = stack.cpu_seconds()
        peak: list[int] = []
        gateway_times.append(await gateway_upload(stack, path, sha256, f"1.{round_number}", peak))
        cpu_after = stack.cpu_seconds()
        rss.append(max(peak) - baseline_rss)
        gateway_cpu.append((cpu_after["gateway"] - cpu_between["gateway"]) / gib)
        print(
            f"  round {round_number}: direct {mib / direct_times[-1]:.0f} MiB/s "
            f"(s3 cpu {cpu_between['s3'] - cpu_before['s3']:.1f}s), "
            f"gateway {mib / gateway_times[-1]:.0f} MiB/s "
            f"(gateway cpu {cpu_after['gateway'] - cpu_between['gateway']:.1f}s, "
            f"s3 cpu {cpu_after['s3'] - cpu_between['s3']:.1f}s), "
            f"gateway RSS +{rss[-1] / 1024:.0f} MiB; CPU-s/GiB: gateway {gateway_cpu[-1]:.2f}, "
            f"driver {driver_cpu[-1]:.2f}, sha256 {sha_cpu[-1]:.2f}",
            flush=True,
        )
    path.unlink()
    gateway_rate = mib / min(gateway_times)
    direct_rate = mib / min(direct_times)
    return {
        "upload_throughput_ratio": round(gateway_rate / direct_rate, 3),
        "upload_gateway_mib_s": round(gateway_rate, 1),
        "upload_direct_mib_s": round(direct_rate, 1),
        "upload_rss_growth_mib": round(max(rss) / 1024, 1),
    } | _cpu_figures(gateway_cpu, driver_cpu, sha_cpu)
