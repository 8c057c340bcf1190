"""Control-path figures (issue #21): session status and create, side by side with a bare server.

status_rps_ratio = session-status GETs/s of the gateway ÷ GETs/s of ``bare_status`` (aiohttp +
aiobotocore reading the same session record from the same S3 and returning it as JSON), both
driven by 16 concurrent clients for the same duration, alternating rounds. The CPU per request
of each server comes from /proc. create_rps: session creates/s at the same concurrency, with
the S3 and index calls each create makes, counted from the gateway's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from gateway.devstack import free_port
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
    wait_ready,
)
from tests.distributions import build_wheel
from tests.wire import file_body, session_body

CONCURRENCY = 16
SLICE = 2.0  # seconds


async def _drive(
    duration: float, request: Callable[[aiohttp.ClientSession, int], Any]
) -> tuple[int, int]:
    """``request`` from CONCURRENCY workers for ``duration`` seconds: (successes, failures)."""
    done = [0, 0]
    deadline = time.monotonic() + duration
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker(number: int) -> None:
            sequence = 0
            while time.monotonic() < deadline:
                ok = await request(http, number * 1_000_000 + sequence)
                done[0 if ok else 1] += 1
                sequence += 1

        await asyncio.gather(*(worker(n) for n in range(CONCURRENCY)))
    return done[0], done[1]


async def _get_ok(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> bool:
    async with http.get(url, headers=headers) as response:
        await response.read()
        return response.status == 200


async def _rate(pid: int, duration: float, request: Callable[..., Any]) -> dict[str, float]:
    cpu_before, started = cpu_of(pid), time.perf_counter()
    ok, failed = await _drive(duration, request)
    elapsed, cpu = time.perf_counter() - started, cpu_of(pid) - cpu_before
    return {"rps": ok / elapsed, "cpu_ms": cpu * 1000 / max(ok, 1), "failed": failed, "ok": ok}


def _combined(slices: list[dict[str, float]]) -> dict[str, float]:
    """Equal-length slices of one side as one measurement."""
    served = sum(s["ok"] for s in slices)
    return {
        "rps": statistics.mean(s["rps"] for s in slices),
        "cpu_ms": sum(s["cpu_ms"] * s["ok"] for s in slices) / max(served, 1),
        "failed": sum(s["failed"] for s in slices),
        "ok": served,
    }


async def _new_session(http: aiohttp.ClientSession, api: str, name: str) -> dict[str, Any]:
    body = {"meta": META, "name": name, "version": "1.0"}
    async with http.post(api, json=body, headers=HEADERS) as response:
        session: dict[str, Any] = await response.json(content_type=None)
        assert response.status == 201, session
        return session


def _start_bare(stack: Stack, key: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.benchmarks.bare_status", "--port", str(port)),
            *("--endpoint", stack.s3.url, "--bucket", BUCKET, "--key", key),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(stack.workdir / "bare-status.log").open("ab"),
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    return process, f"http://127.0.0.1:{port}/status"


async def _status(stack: Stack, duration: float, rounds: int) -> dict[str, float]:
    async with aiohttp.ClientSession() as http:
        session = await _new_session(http, stack.api, "bench-status")
    url = session["links"]["session"]
    bare, bare_url = _start_bare(stack, f"sessions/{session['session-token']}.json")
    auth = {"Authorization": AUTHORIZATION}
    try:
        # Warm both up (connections, botocore's first-call work, the credential cache).
        await _rate(stack.gateway.pid, 1, lambda h, _: _get_ok(h, url, auth))
        await _rate(bare.pid, 1, lambda h, _: _get_ok(h, bare_url, {}))
        gateway, baseline = [], []
        calls_before = s3_calls(stack.api)
        for round_number in range(rounds):
            runs = [
                (gateway, stack.gateway.pid, lambda h, _: _get_ok(h, url, auth)),
                (baseline, bare.pid, lambda h, _: _get_ok(h, bare_url, {})),
            ]
            # Slices of 2 s, alternating, so that a burst of load from elsewhere on the
            # machine falls on both sides alike.
            slices: dict[int, list[dict[str, float]]] = {id(gateway): [], id(baseline): []}
            for number in range(max(1, round(duration / SLICE))):
                order = runs if (round_number + number) % 2 == 0 else runs[::-1]
                for results, pid, request in order:
                    slices[id(results)].append(await _rate(pid, SLICE, request))
            for results, _, _ in runs:
                results.append(_combined(slices[id(results)]))
            print(
                f"  status round {round_number}: gateway {gateway[-1]['rps']:.0f} req/s "
                f"{gateway[-1]['cpu_ms']:.2f} ms CPU, bare {baseline[-1]['rps']:.0f} req/s "
                f"{baseline[-1]['cpu_ms']:.2f} ms CPU",
                flush=True,
            )
        calls = delta(s3_calls(stack.api), calls_before)
    finally:
        bare.terminate()
        bare.wait(30)
    ratios = [g["rps"] / b["rps"] for g, b in zip(gateway, baseline, strict=True)]
    served = sum(g["ok"] for g in gateway)
    figures = {
        "status_rps_ratio": round(statistics.median(ratios), 3),
        "status_rps_ratio_min": round(min(ratios), 3),
        "status_rps_ratio_max": round(max(ratios), 3),
        "status_rps": round(statistics.median(g["rps"] for g in gateway), 1),
        "status_baseline_rps": round(statistics.median(b["rps"] for b in baseline), 1),
        "status_cpu_ms_per_request": round(statistics.median(g["cpu_ms"] for g in gateway), 3),
        "status_baseline_cpu_ms_per_request": round(
            statistics.median(b["cpu_ms"] for b in baseline), 3
        ),
        "status_errors": sum(r["failed"] for r in gateway + baseline),
        # What the rps ratio would be with a core to spare on both sides (CPU-bound servers).
        "status_cpu_ratio": round(
            statistics.median(
                b["cpu_ms"] / g["cpu_ms"] for g, b in zip(gateway, baseline, strict=True)
            ),
            3,
        ),
    }
    figures["status_s3_calls_per_request"] = round(sum(calls.values()) / served, 2)
    return figures


async def _create(stack: Stack, duration: float, rounds: int) -> dict[str, float]:
    async def create(http: aiohttp.ClientSession, number: int, tag: str) -> bool:
        body = {"meta": META, "name": f"bench-create-{tag}-{number}", "version": "1.0"}
        async with http.post(stack.api, json=body, headers=HEADERS) as response:
            await response.read()
            return response.status == 201

    rates, s3_per, index_per, by_operation = [], [], [], {}
    for round_number in range(rounds):
        s3_before, index_before = s3_calls(stack.api), backend_calls(stack.api)
        tag = f"r{round_number}"
        result = await _rate(stack.gateway.pid, duration, lambda h, n, tag=tag: create(h, n, tag))
        created = result["ok"]
        s3 = delta(s3_calls(stack.api), s3_before)
        index = delta(backend_calls(stack.api), index_before)
        rates.append(result)
        s3_per.append(sum(s3.values()) / created)
        index_per.append(sum(index.values()) / created)
        by_operation = {op: round(n / created, 2) for op, n in s3.items()}
        print(
            f"  create round {round_number}: {result['rps']:.0f} creates/s, "
            f"{result['cpu_ms']:.2f} ms CPU, {s3_per[-1]:.1f} S3 calls {by_operation}, "
            f"{index_per[-1]:.1f} index calls each, {result['failed']} failed",
            flush=True,
        )
    figures = {
        "create_rps": round(statistics.median(r["rps"] for r in rates), 1),
        "create_cpu_ms_per_request": round(statistics.median(r["cpu_ms"] for r in rates), 3),
        "create_s3_calls_per_create": round(statistics.median(s3_per), 2),
        "create_index_calls_per_create": round(statistics.median(index_per), 2),
        "create_errors": sum(r["failed"] for r in rates),
    }
    figures |= {f"create_s3_{op}_per_create": n for op, n in sorted(by_operation.items())}
    return figures


async def _round_trips(stack: Stack) -> dict[str, float]:
    """S3 and index calls of each step of one small release, one step at a time."""
    wheel = build_wheel(stack.workdir, "bench-trips", "1.0", payload=b"x" * 4096)
    data = wheel.read_bytes()
    figures: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:

        async def step(name: str, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
            s3_before, index_before = s3_calls(stack.api), backend_calls(stack.api)
            async with http.request(method, url, **kwargs) as response:
                body: dict[str, Any] = await response.json(content_type=None)
                assert response.status < 300, body
            figures[f"s3_calls_{name}"] = sum(delta(s3_calls(stack.api), s3_before).values())
            index = delta(backend_calls(stack.api), index_before)
            figures[f"index_calls_{name}"] = sum(index.values())
            return body

        create = session_body("bench-trips", "1.0")
        session = await step("create", "POST", stack.api, json=create, headers=HEADERS)
        links = session["links"]
        await step("status", "GET", links["session"], headers=HEADERS)
        file_request = file_body(wheel.name, data)
        file = await step(
            "file_create", "POST", links["upload"], json=file_request, headers=HEADERS
        )
        octets = {"Authorization": AUTHORIZATION, "Content-Type": "application/octet-stream"}
        await step("upload_bytes", "POST", file["mechanism"]["file_url"], data=data, headers=octets)
        await step("file_status", "GET", file["links"]["file-upload-session"], headers=HEADERS)
        empty = {"meta": META}
        await step("complete", "POST", file["links"]["complete"], json=empty, headers=HEADERS)
        await step("status_1_file", "GET", links["session"], headers=HEADERS)
        s3_before, index_before = s3_calls(stack.api), backend_calls(stack.api)
        body = await step("publish", "POST", links["publish"], json=empty, headers=HEADERS)
        polls = 0
        while body["status"] == "processing":
            await asyncio.sleep(0.2)
            body = await step("poll", "GET", links["session"], headers=HEADERS)
            polls += 1
        assert body["status"] == "published", body
        # The whole publish, background work included, less the status polls that watched it.
        s3 = sum(delta(s3_calls(stack.api), s3_before).values())
        figures["s3_calls_publish_until_published"] = s3 - polls * figures["s3_calls_status_1_file"]
        index = sum(delta(backend_calls(stack.api), index_before).values())
        figures["index_calls_publish_until_published"] = index
        figures.pop("s3_calls_poll", None)
        figures.pop("index_calls_poll", None)
    print(f"  round trips: {figures}", flush=True)
    return figures


async def measure(stack: Stack, rounds: int, duration: float = 10) -> dict[str, float]:
    return (
        await _round_trips(stack)
        | await _status(stack, duration, rounds)
        | await _create(stack, duration, rounds)
    )
