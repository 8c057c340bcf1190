"""Cost that should grow with the work, not with what is stored (issue #21, point 4).

- ``status_ms_N_files`` / ``file_create_ms_N_files``: one client, one request at a time, in a
  session holding N = 1 and N = 400 file uploads (median of several), with the gateway's CPU
  and its S3 calls per request; the ratios 400 ÷ 1 are the figures (goal ≤ 2).
- ``sweep_s3_requests``: S3 requests one expiry sweep makes over ``retained`` terminal,
  settled sessions inside their retention week, with nothing due (goal ≤ 10). The records are
  written straight to S3 under their own prefix, as a gateway from before the due index left
  them: the first sweep indexes them once (``sweep_migration_s3_requests``), and the figure is
  the sweep after it, as every later minute. The sweep runs in this process on the gateway's
  own application (``create_app``), its S3 calls counted by the gateway's metrics.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import statistics
import time
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import REGISTRY

from gateway import logs
from gateway.api.context import SERVICES
from gateway.app import create_app
from gateway.app_keys import S3_CLIENT
from gateway.domain import clock
from gateway.domain.records import PublishingSession
from gateway.domain.states import SessionState
from gateway.settings import load_settings
from gateway.store import keys
from tests.benchmarks.stack import (
    AUTHORIZATION,
    BUCKET,
    HEADERS,
    META,
    Stack,
    backend_calls,
    cpu_of,
    delta,
    s3_calls,
)

SAMPLES = 10
PROJECT = "bench-scale"


def _file_body(number: int) -> dict[str, Any]:
    return {
        "meta": META,
        # A build tag per file: 400 distinct wheels of one release.
        "filename": f"bench_scale-1.0-{number}-py3-none-any.whl",
        "size": 1024,
        "hashes": {"sha256": hashlib.sha256(str(number).encode()).hexdigest()},
        "mechanism": "http-post-bytes",
    }


async def _create_file(http: aiohttp.ClientSession, upload_url: str, number: int) -> float:
    for _ in range(20):
        started = time.perf_counter()
        async with http.post(upload_url, json=_file_body(number), headers=HEADERS) as response:
            body = await response.read()
            if response.status == 202:
                return time.perf_counter() - started
            if response.status != 503:
                raise RuntimeError(f"file create {number}: {response.status} {body[:300]!r}")
        await asyncio.sleep(0.1)  # contention on the session's records: retry
    raise RuntimeError(f"file create {number}: kept contending")


async def _status(http: aiohttp.ClientSession, url: str) -> float:
    started = time.perf_counter()
    async with http.get(url, headers={"Authorization": AUTHORIZATION}) as response:
        await response.read()
        assert response.status == 200
    return time.perf_counter() - started


async def _per_request(stack: Stack, calls: Any) -> dict[str, float]:
    """Run ``calls`` (coroutines, one at a time): median ms, CPU ms, S3 and index calls each."""
    s3_before, index_before = s3_calls(stack.api), backend_calls(stack.api)
    cpu_before = cpu_of(stack.gateway.pid)
    times = [await call for call in calls]
    cpu = cpu_of(stack.gateway.pid) - cpu_before
    s3 = delta(s3_calls(stack.api), s3_before)
    index = delta(backend_calls(stack.api), index_before)
    return {
        "ms": statistics.median(times) * 1000,
        "ms_min": min(times) * 1000,
        "ms_max": max(times) * 1000,
        "cpu_ms": cpu * 1000 / len(times),
        "s3_calls": sum(s3.values()) / len(times),
        "index_calls": sum(index.values()) / len(times),
    }


async def _files(stack: Stack) -> dict[str, float]:
    figures: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        body = {"meta": META, "name": PROJECT, "version": "1.0"}
        async with http.post(stack.api, json=body, headers=HEADERS) as response:
            session = await response.json(content_type=None)
            assert response.status == 201, session
        url, upload_url = session["links"]["session"], session["links"]["upload"]
        await _create_file(http, upload_url, 0)
        created = 1
        for count in (1, 400):
            if count > created:
                started = time.perf_counter()
                await _fill(http, upload_url, created, count)
                print(f"  filled to {count} files in {time.perf_counter() - started:.0f}s")
                created = count
            status = await _per_request(stack, (_status(http, url) for _ in range(SAMPLES)))
            # Each create adds one file: files count .. count+4 are created at "count files".
            creates = await _per_request(
                stack, (_create_file(http, upload_url, created + i) for i in range(5))
            )
            created += 5
            label = f"{count}_file{'s' if count > 1 else ''}"
            for name, result in (("status", status), ("file_create", creates)):
                figures[f"{name}_ms_{label}"] = round(result.pop("ms"), 2)
                figures |= {f"{name}_{label}_{k}": round(v, 2) for k, v in result.items()}
            print(f"  {count} files: status {status}, file create {creates}", flush=True)
    figures["status_scale_ratio"] = round(
        figures["status_ms_400_files"] / figures["status_ms_1_file"], 2
    )
    figures["file_create_scale_ratio"] = round(
        figures["file_create_ms_400_files"] / figures["file_create_ms_1_file"], 2
    )
    return figures


async def _fill(http: aiohttp.ClientSession, upload_url: str, start: int, stop: int) -> None:
    numbers = iter(range(start, stop))

    async def worker() -> None:
        for number in numbers:
            await _create_file(http, upload_url, number)

    await asyncio.gather(*(worker() for _ in range(4)))


def _s3_requests() -> dict[str, float]:
    """S3 calls this process's gateway application has made so far, by operation."""
    counts: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "upload_gateway_s3_seconds":
            for sample in metric.samples:
                if sample.name.endswith("_count"):
                    counts[sample.labels["operation"]] = sample.value
    return counts


async def _sweep(stack: Stack, retained: int) -> dict[str, float]:
    logs.configure("warning")
    settings = load_settings(stack.workdir / "gateway.toml")
    settings.s3.prefix = f"sweep-bench-{secrets.token_hex(4)}/"
    runner = web.AppRunner(create_app(settings, run_sweeper=False))
    await runner.setup()  # the application's clients and services, without serving
    try:
        app = runner.app
        started = time.perf_counter()
        await _write_retained(app[S3_CLIENT], settings.s3.prefix, retained)
        print(f"  wrote {retained} retained sessions in {time.perf_counter() - started:.0f}s")
        # Records written straight to S3 are what a gateway before the due index left: the
        # first sweep indexes them once (reported apart); the second is every later minute.
        migration = await _one_sweep(app)
        steady = await _one_sweep(app)
    finally:
        await runner.cleanup()
    for name, (requests, by_operation, elapsed, cpu) in (("first", migration), ("later", steady)):
        print(
            f"  {name} sweep: {requests:.0f} S3 requests {by_operation}, {elapsed:.1f}s, "
            f"{cpu:.1f} CPU-s",
            flush=True,
        )
    requests, by_operation, elapsed, cpu = steady
    return {f"sweep_s3_{operation}": n for operation, n in sorted(by_operation.items())} | {
        "sweep_retained_sessions": retained,
        "sweep_s3_requests": requests,
        "sweep_seconds": round(elapsed, 2),
        "sweep_cpu_seconds": round(cpu, 2),
        "sweep_migration_s3_requests": migration[0],
    }


async def _one_sweep(app: web.Application) -> tuple[float, dict[str, float], float, float]:
    before, cpu_before = _s3_requests(), time.process_time()
    started = time.perf_counter()
    await app[SERVICES].sweeper.sweep()
    elapsed = time.perf_counter() - started
    by_operation = delta(_s3_requests(), before)
    return sum(by_operation.values()), by_operation, elapsed, time.process_time() - cpu_before


async def _write_retained(client: Any, prefix: str, count: int) -> None:
    """``count`` published, settled sessions ended an hour ago: kept for the retention week,
    nothing for the sweep to do."""
    ended = clock.now() - timedelta(hours=1)
    gate = asyncio.Semaphore(64)

    async def put(number: int) -> None:
        session = PublishingSession(
            id=secrets.token_urlsafe(32),
            name=f"retained-{number}",
            version="1.0",
            status=SessionState.PUBLISHED,
            created_at=ended - timedelta(minutes=5),
            expires_at=ended + timedelta(days=7),
            ended_at=ended,
            settled=True,
            created_by="config:bench",
        )
        async with gate:
            await client.put_object(
                Bucket=BUCKET,
                Key=prefix + keys.session(session.id),
                Body=session.model_dump_json().encode(),
                ContentType="application/json",
            )

    await asyncio.gather(*(put(n) for n in range(count)))


async def measure(stack: Stack, retained: int) -> dict[str, float]:
    return await _files(stack) | await _sweep(stack, retained)
