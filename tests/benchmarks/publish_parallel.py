"""Whether an index takes a release faster with the wheels posted several at a time
(``publish.parallel``, issue #26), for pypiserver and devpi.

    python -m tests.benchmarks.publish_parallel [--files 51] [--rounds 3] [--parallel 4]

For each index: SeaweedFS, the index, and two gateways on it, one with ``publish.parallel = 1``
and one with ``--parallel``. Each round stages a release of ``--files`` small wheels (an sdist
among them) in each gateway's session, then times each publish from the request to
``published``, the two sides alternating which goes first (the index slows as it fills up).
Prints the publish seconds per side and round, the index's CPU seconds per side, and
``{index}_parallel_ratio``: the parallel side's best publish time ÷ the serial side's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from gateway.devstack import (
    Server,
    free_port,
    start_devpi,
    start_pypiserver,
    start_seaweedfs,
    write_htpasswd,
)
from tests.benchmarks.publish import publish_and_wait, upload_one
from tests.benchmarks.release import PROJECT, release_files
from tests.benchmarks.stack import (
    HEADERS,
    META,
    PASSWORD,
    USER,
    backend_toml,
    cpu_of,
    gateway_toml,
    wait_ready,
)
from tests.wire import expect_json


@contextmanager
def _gateway(workdir: Path, s3: Server, backend: str, parallel: int) -> Iterator[str]:
    """A gateway posting ``parallel`` wheels at a time, on a bucket of its own; its API."""
    port = free_port()
    config = workdir / f"gateway-{parallel}.toml"
    publish = f"[publish]\nparallel = {parallel}\n"
    config.write_text(gateway_toml(port, s3, f"parallel-{parallel}", backend, publish))
    log = (workdir / f"gateway-{parallel}.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz")
        yield f"http://127.0.0.1:{port}/upload/2.0/"
    finally:
        process.terminate()
        process.wait(30)


async def _staged(api: str, version: str, paths: list[Path]) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http:
        document = {"meta": META, "name": PROJECT, "version": version}
        async with http.post(api, json=document, headers=HEADERS) as response:
            session: dict[str, Any] = await expect_json(response, 201)
        limit = asyncio.Semaphore(8)

        async def one(path: Path) -> None:
            async with limit:
                await upload_one(http, session, path)

        await asyncio.gather(*(one(path) for path in paths))
    return session


async def _published(session: dict[str, Any]) -> float:
    async with aiohttp.ClientSession() as http:
        started = time.perf_counter()
        await publish_and_wait(http, session)
        return time.perf_counter() - started


def _index(kind: str, workdir: Path) -> Server:
    if kind == "devpi":
        return start_devpi(workdir / "devpi", workdir / "devpi.log", USER, PASSWORD)
    htpasswd = workdir / "htpasswd"
    write_htpasswd(htpasswd, {USER: PASSWORD})
    return start_pypiserver(workdir / "packages", htpasswd, workdir / "pypiserver.log")


def measure(kind: str, files: int, rounds: int, parallel: int) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix=f"publish-parallel-{kind}-"))
    s3 = start_seaweedfs(workdir / "s3", workdir / "seaweedfs.log")
    index = _index(kind, workdir)
    times: dict[int, list[float]] = {1: [], parallel: []}
    index_cpu: dict[int, float] = {1: 0.0, parallel: 0.0}
    try:
        backend = backend_toml(kind, index)
        with (
            _gateway(workdir, s3, backend, 1) as serial,
            _gateway(workdir, s3, backend, parallel) as wide,
        ):
            apis = {1: serial, parallel: wide}
            for number in range(rounds):
                sides = [1, parallel] if number % 2 == 0 else [parallel, 1]
                for side in sides:
                    version = f"{side}.{number}"
                    paths = release_files(workdir, version, files)
                    session = asyncio.run(_staged(apis[side], version, paths))
                    before = cpu_of(index.process.pid)
                    times[side].append(asyncio.run(_published(session)))
                    index_cpu[side] += cpu_of(index.process.pid) - before
                    for path in paths:
                        path.unlink()
                print(
                    f"  {kind} round {number}: publish of {files} files, parallel 1 "
                    f"{times[1][-1]:.2f}s, parallel {parallel} {times[parallel][-1]:.2f}s",
                    flush=True,
                )
    finally:
        index.stop()
        s3.stop()
    return {
        f"{kind}_parallel_ratio": round(min(times[parallel]) / min(times[1]), 3),
        f"{kind}_serial_publish_s": round(min(times[1]), 2),
        f"{kind}_parallel_publish_s": round(min(times[parallel]), 2),
        f"{kind}_serial_index_cpu_s": round(index_cpu[1], 2),
        f"{kind}_parallel_index_cpu_s": round(index_cpu[parallel], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=51)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--index", choices=("pypiserver", "devpi"), action="append")
    args = parser.parse_args()
    for kind in args.index or ["pypiserver", "devpi"]:
        for name, value in measure(kind, args.files, args.rounds, args.parallel).items():
            print(f"{name} = {value}", flush=True)


if __name__ == "__main__":
    os.environ.pop("GATEWAY_PUBLISH__PARALLEL", None)  # each gateway's file says it
    main()
