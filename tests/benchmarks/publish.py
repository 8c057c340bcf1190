"""Publish figures (issue #4), each against `twine upload` to the same pypiserver in one run.

publish_throughput_ratio = gateway replay MiB/s (S3 → index, from publish to published) for a
200 MiB wheel ÷ twine's MiB/s uploading the same-sized wheel from local disk.
release_e2e_ratio = time of a 10 x 20 MiB release through the gateway end to end (create,
parallel uploads, complete, publish, published) ÷ time of `twine upload` of the same files,
with the CPU seconds each side cost the gateway, SeaweedFS, the index and the client (this
process's driver, or twine) in its fastest round: where the machine's two cores went.
Each round alternates which side goes first, after one untimed upload of the same size.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from tests.benchmarks.stack import (
    AUTHORIZATION,
    HEADERS,
    META,
    Stack,
    alternate,
    cpu_of,
    delta,
    twine,
    warm_up,
)
from tests.distributions import build_wheel
from tests.wire import create_file, expect_json, file_body


async def upload_one(http: aiohttp.ClientSession, session: dict[str, Any], path: Path) -> None:
    data = path.read_bytes()
    file = await create_file(http, session, file_body(path.name, data), AUTHORIZATION)
    octets = {"Authorization": AUTHORIZATION, "Content-Type": "application/octet-stream"}
    async with http.post(file["mechanism"]["file_url"], data=data, headers=octets) as response:
        await expect_json(response, 200)
    async with http.post(
        file["links"]["complete"], json={"meta": META}, headers=HEADERS
    ) as response:
        await expect_json(response, 201)


async def publish_and_wait(http: aiohttp.ClientSession, session: dict[str, Any]) -> None:
    async with http.post(
        session["links"]["publish"], json={"meta": META}, headers=HEADERS
    ) as response:
        body = await response.json(content_type=None)
        assert response.status in (201, 202), body
    while body["status"] == "processing":
        await asyncio.sleep(0.05)
        async with http.get(session["links"]["session"], headers=HEADERS) as response:
            body = await response.json(content_type=None)
    assert body["status"] == "published", body


async def gateway_release(
    stack: Stack, project: str, version: str, paths: list[Path]
) -> tuple[float, float]:
    """(end-to-end seconds, publish-only seconds)."""
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        async with http.post(
            stack.api, json={"meta": META, "name": project, "version": version}, headers=HEADERS
        ) as response:
            session = await expect_json(response, 201)
        await asyncio.gather(*(upload_one(http, session, p) for p in paths))
        publish_started = time.perf_counter()
        await publish_and_wait(http, session)
        ended = time.perf_counter()
    return ended - started, ended - publish_started


def _cpu(stack: Stack) -> dict[str, float]:
    """CPU seconds so far: the gateway, SeaweedFS, the index, and the client side (this
    process, which drives the gateway's release, and the twine processes it waited for)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    return stack.cpu_seconds() | {"index": cpu_of(stack.index.process.pid), "client": client}


def _timed(stack: Stack, run: Callable[[], float]) -> tuple[float, dict[str, float]]:
    before = _cpu(stack)
    seconds = run()
    return seconds, delta(_cpu(stack), before)


def _fastest(runs: list[tuple[float, dict[str, float]]]) -> tuple[float, dict[str, float]]:
    return min(runs, key=lambda run: run[0])


def measure(stack: Stack, rounds: int) -> dict[str, float]:
    work = stack.workdir / "dists"
    work.mkdir(exist_ok=True)
    big = 200 << 20
    gateway_rates, twine_rates = [], []
    warm_up(stack, work, big)
    for r in range(rounds):
        # A project of its own each time: pypiserver re-hashes a project's files on every
        # listing, so a shared one would make later rounds slower for the gateway only.
        gw = build_wheel(work, f"bench-publish-gw{r}", "1.0", payload=os.urandom(big))
        tw = build_wheel(work, f"bench-publish-tw{r}", "1.0", payload=os.urandom(big))

        def by_twine(tw: Path = tw) -> None:
            twine_rates.append(tw.stat().st_size / twine(stack.index.url + "/", [tw]))

        def by_gateway(gw: Path = gw, r: int = r) -> None:
            _, publish_seconds = asyncio.run(
                gateway_release(stack, f"bench-publish-gw{r}", "1.0", [gw])
            )
            gateway_rates.append(gw.stat().st_size / publish_seconds)

        for run in alternate(r, by_twine, by_gateway):
            run()
        print(
            f"  publish round {r}: twine {twine_rates[-1] / 2**20:.0f} MiB/s, "
            f"gateway replay {gateway_rates[-1] / 2**20:.0f} MiB/s",
            flush=True,
        )
        gw.unlink()
        tw.unlink()
    e2e_gateway: list[tuple[float, dict[str, float]]] = []
    e2e_twine: list[tuple[float, dict[str, float]]] = []
    for r in range(rounds):
        tags = [f"cp3{m}-cp3{m}-manylinux_2_28_x86_64" for m in range(8, 18)]
        gw = [
            build_wheel(work, "bench-release", f"1.{r}", tag=t, payload=os.urandom(20 << 20))
            for t in tags
        ]
        tw = [
            build_wheel(work, "bench-release", f"2.{r}", tag=t, payload=os.urandom(20 << 20))
            for t in tags
        ]

        def release_by_twine(tw: list[Path] = tw) -> None:
            e2e_twine.append(_timed(stack, lambda: twine(stack.index.url + "/", tw)))

        def release_by_gateway(gw: list[Path] = gw, r: int = r) -> None:
            e2e_gateway.append(
                _timed(
                    stack,
                    lambda: asyncio.run(gateway_release(stack, "bench-release", f"1.{r}", gw))[0],
                )
            )

        for run in alternate(r, release_by_twine, release_by_gateway):
            run()
        print(
            f"  release round {r}: twine {e2e_twine[-1][0]:.1f}s (CPU-s {e2e_twine[-1][1]}), "
            f"gateway {e2e_gateway[-1][0]:.1f}s (CPU-s {e2e_gateway[-1][1]})",
            flush=True,
        )
        for path in gw + tw:
            path.unlink()
    (gateway_s, gateway_cpu), (twine_s, twine_cpu) = _fastest(e2e_gateway), _fastest(e2e_twine)
    split = {f"release_e2e_gateway_side_cpu_s_{k}": v for k, v in gateway_cpu.items()}
    split |= {f"release_e2e_twine_side_cpu_s_{k}": v for k, v in twine_cpu.items()}
    return {
        "publish_throughput_ratio": round(max(gateway_rates) / max(twine_rates), 3),
        "release_e2e_ratio": round(gateway_s / twine_s, 3),
        **{name: round(value, 2) for name, value in split.items()},
    }
