"""Load figures (issue #10): N concurrent simulated publishers, each running create → upload a
1 MiB wheel → complete → status → publish → poll until published, against the real stack;
once with one gateway, once with two replicas behind alternating clients.

Reports p50/p99 latency per call type, releases/s, errors (target 0) and peak gateway RSS.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp

from tests.benchmarks.stack import AUTHORIZATION, HEADERS, META, Stack, cpu_of, start_gateway
from tests.distributions import build_wheel
from tests.wire import file_body, session_body


async def _timed(
    latencies: dict[str, list[float]], name: str, call: Any, expected: set[int]
) -> dict[str, Any]:
    started = time.perf_counter()
    async with call as response:
        body = await response.json(content_type=None)
        latencies[name].append(time.perf_counter() - started)
        if response.status not in expected:
            raise RuntimeError(f"{name}: {response.status} {body}")
        return body


async def _publisher(
    http: aiohttp.ClientSession, api: str, wheel: Path, project: str, latencies: dict
) -> None:  # type: ignore[type-arg]
    data = wheel.read_bytes()
    session = await _timed(
        latencies,
        "create",
        http.post(api, json=session_body(project, "1.0"), headers=HEADERS),
        {201},
    )
    file = await _timed(
        latencies,
        "file",
        http.post(
            session["links"]["upload"],
            json=file_body(wheel.name, data),
            headers=HEADERS,
        ),
        {202},
    )
    octets = {"Authorization": AUTHORIZATION, "Content-Type": "application/octet-stream"}
    await _timed(
        latencies,
        "bytes",
        http.post(file["mechanism"]["file_url"], data=data, headers=octets),
        {200},
    )
    await _timed(
        latencies,
        "complete",
        http.post(file["links"]["complete"], json={"meta": META}, headers=HEADERS),
        {201, 202},
    )
    # A publisher looks at its session before publishing it (every file completed?), and
    # polls it after a 202: the status figure is measured under load either way.
    await _timed(latencies, "status", http.get(session["links"]["session"], headers=HEADERS), {200})
    body = await _timed(
        latencies,
        "publish",
        http.post(session["links"]["publish"], json={"meta": META}, headers=HEADERS),
        {201, 202},
    )
    while body["status"] == "processing":
        await asyncio.sleep(0.5)
        body = await _timed(
            latencies, "status", http.get(session["links"]["session"], headers=HEADERS), {200}
        )
    if body["status"] != "published":
        raise RuntimeError(f"ended {body['status']}: {body.get('notices')}")


async def _run(
    stack: Stack, apis: list[str], clients: int, label: str, gateways: list[int]
) -> dict[str, float]:
    work = stack.workdir / f"load-{label}"
    work.mkdir(exist_ok=True)
    projects = [f"load-{label}-{i}" for i in range(clients)]
    wheels = [build_wheel(work, p, "1.0", payload=os.urandom(1 << 20)) for p in projects]
    latencies: dict[str, list[float]] = defaultdict(list)
    peak = [0]
    sampling = True

    async def sample() -> None:
        while sampling:
            peak[0] = max(peak[0], stack.gateway_rss_kib())
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    cpu_before = _cpu(stack, gateways)
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                _publisher(http, apis[i % len(apis)], wheels[i], projects[i], latencies)
                for i in range(clients)
            ),
            return_exceptions=True,
        )
        elapsed = time.perf_counter() - started
    sampling = False
    await sampler
    cpu = {k: v - cpu_before[k] for k, v in _cpu(stack, gateways).items()}
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors[:3]:
        print(f"    error: {error!r}"[:300], flush=True)
    figures: dict[str, float] = {
        f"load_{label}_releases_per_s": round((clients - len(errors)) / elapsed, 2),
        f"load_{label}_errors": len(errors),
        f"load_{label}_peak_rss_mib": round(peak[0] / 1024, 1),
    }
    # Where the machine's CPU went, per release: on 2 cores the run cannot take less than
    # half the total, whatever the gateway does.
    for process, seconds in cpu.items():
        figures[f"load_{label}_cpu_ms_per_release_{process}"] = round(seconds * 1000 / clients, 1)
    for name, values in sorted(latencies.items()):
        ordered = sorted(values)
        figures[f"load_{label}_{name}_p50_ms"] = round(statistics.median(ordered) * 1000, 1)
        figures[f"load_{label}_{name}_p99_ms"] = round(
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 1
        )
    print(
        f"  {label}: {clients} publishers in {elapsed:.1f}s, {len(errors)} errors, "
        f"peak RSS {peak[0] / 1024:.0f} MiB",
        flush=True,
    )
    return figures


def _cpu(stack: Stack, gateways: list[int]) -> dict[str, float]:
    """CPU seconds so far of the gateway(s), SeaweedFS, pypiserver and these clients."""
    return {
        "gateway": sum(cpu_of(pid) for pid in gateways),
        "s3": cpu_of(stack.s3.process.pid),
        "index": cpu_of(stack.index.process.pid),
        "clients": cpu_of(os.getpid()),
    }


def measure(stack: Stack, clients: int) -> dict[str, float]:
    results: dict[str, float] = {"load_clients": clients}
    results |= asyncio.run(_run(stack, [stack.api], clients, "one", [stack.gateway.pid]))
    replica, second_api = start_gateway(stack.workdir, stack.s3, stack.index)
    try:
        results |= asyncio.run(
            _run(stack, [stack.api, second_api], clients, "two", [stack.gateway.pid, replica.pid])
        )
    finally:
        replica.terminate()
        replica.wait(30)
    return results
