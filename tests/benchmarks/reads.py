"""The read path (issue #28, R-W10) against the same pypiserver read directly.

On one index holding an application whose five dependencies each ship a 21 MiB wheel (105 MiB
in all), after the gateway has learned their facts once:

- resolve_bytes_ratio = bytes the index sent while `uv pip compile` resolved the application
  through the gateway ÷ bytes it sent when uv read the index directly (goal <= 0.05);
- resolve_time_ratio = the same two resolves' wall time (goal <= 0.5);
- page_latency_ratio = p50 of a cached project page through the gateway (reading pypiserver
  itself, ``proxy.page_max_age`` at its default of 1 s) ÷ p50 of the index's own page
  (goal <= 1.2);
- reads_gateway_cpu_ms_per_page = the gateway's CPU per page served, over those requests;
- the same page figures with ``proxy.page_max_age = 0`` (``*_revalidating``: the index is
  asked on every request), and the resolve
  figures for ``pip install --dry-run`` (``*_pip``), which reads no ranges: uv does, so uv
  straight from pypiserver already fetches little more than the METADATA it needs.

Bytes are counted by a small reverse proxy in front of pypiserver, which both uv (directly)
and the gateway (as its ``proxy.upstream``) read through.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from gateway.devstack import free_port
from tests.benchmarks.stack import Stack, _config, alternate, cpu_of, twine, wait_ready
from tests.distributions import build_wheel

DEPENDENCIES = 5
WHEEL_BYTES = 21 << 20
PAGES = 200
UV = str(Path(sys.executable).with_name("uv"))


class Counter:
    """A reverse proxy to ``target`` counting the response bytes it relays."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.bytes = 0
        self._lock = threading.Lock()
        counter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._relay("GET")

            def do_HEAD(self) -> None:  # uv asks whether the index honours Range
                self._relay("HEAD")

            def _relay(self, method: str) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                request = urllib.request.Request(
                    counter.target + self.path, headers=headers, method=method
                )
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, answer_headers, body = answer.status, answer.headers, answer.read()
                except urllib.error.HTTPError as error:
                    status, answer_headers, body = error.code, error.headers, error.read()
                with counter._lock:
                    counter.bytes += len(body)
                self.send_response(status)
                for name, value in answer_headers.items():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                length = answer_headers.get("Content-Length") if method == "HEAD" else None
                self.send_header("Content-Length", length or str(len(body)))
                self.end_headers()
                if method == "GET":
                    self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def measure(stack: Stack, rounds: int) -> dict[str, float]:
    work = stack.workdir / "reads"
    work.mkdir(exist_ok=True)
    counter = Counter(stack.index.url)
    gateway, base = _reading_gateway(stack, work, counter.url)
    try:
        _fill_index(stack, work)
        _resolve(base + "/simple/", work)  # the gateway learns every file once
        pip_through = _counted(counter, base + "/simple/", work, "pip")
        pip_direct = _counted(counter, counter.url + "/simple/", work, "pip")
        print(
            f"  pip: direct {pip_direct[0] / 2**20:.1f} MiB {pip_direct[1]:.2f} s, through the "
            f"gateway {pip_through[0] / 2**10:.1f} KiB {pip_through[1]:.2f} s",
            flush=True,
        )
        through, direct = [], []
        for r in range(rounds):
            for run in alternate(
                r,
                lambda: through.append(_counted(counter, base + "/simple/", work)),
                lambda: direct.append(_counted(counter, counter.url + "/simple/", work)),
            ):
                run()
            print(
                f"  reads round {r}: direct {direct[-1][0] / 2**20:.1f} MiB "
                f"{direct[-1][1]:.2f} s, through the gateway {through[-1][0] / 2**10:.1f} KiB "
                f"{through[-1][1]:.2f} s",
                flush=True,
            )
    finally:
        gateway.terminate()
        gateway.wait(30)
        counter.server.shutdown()
    # Pages are timed with the gateway reading pypiserver itself, not through the counter:
    # with page_max_age = 0 (revalidating every request), then 1 (the default).
    pages = {}
    for max_age in (0, 1):
        gateway, base = _reading_gateway(stack, work, stack.index.url, max_age)
        try:
            pages[max_age] = _page_latency(gateway.pid, base, stack.index.url)
        finally:
            gateway.terminate()
            gateway.wait(30)
        ours, theirs, cpu_ms = pages[max_age]
        print(
            f"  page p50 (page_max_age = {max_age}): gateway {ours * 1000:.2f} ms, "
            f"index {theirs * 1000:.2f} ms, gateway CPU {cpu_ms:.2f} ms/page",
            flush=True,
        )
    return {
        "resolve_bytes_ratio": round(min(b for b, _ in through) / min(b for b, _ in direct), 4),
        "resolve_time_ratio": round(min(t for _, t in through) / min(t for _, t in direct), 3),
        "resolve_bytes_ratio_pip": round(pip_through[0] / pip_direct[0], 4),
        "resolve_time_ratio_pip": round(pip_through[1] / pip_direct[1], 3),
        "page_latency_ratio": round(pages[1][0] / pages[1][1], 3),
        "page_latency_ratio_revalidating": round(pages[0][0] / pages[0][1], 3),
        "reads_gateway_cpu_ms_per_page": round(pages[1][2], 3),
        "reads_gateway_cpu_ms_per_page_revalidating": round(pages[0][2], 3),
    }


def _reading_gateway(
    stack: Stack, work: Path, upstream: str, max_age: float = 0
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = _config(work, port, stack.s3, stack.index)
    config.write_text(
        config.read_text()
        + f'[proxy]\nread_proxy = true\nupstream = "{upstream}"\npage_max_age = {max_age}\n'
    )
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "gateway.log").open("ab"),
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    return gateway, f"http://127.0.0.1:{port}"


def _fill_index(stack: Stack, work: Path) -> None:
    """Five 21 MiB dependencies and the application needing them, straight onto the index."""
    wheels = [
        build_wheel(work, f"bench-reads-dep{n}", "1.0", payload=os.urandom(WHEEL_BYTES))
        for n in range(DEPENDENCIES)
    ]
    requires = tuple(f"bench-reads-dep{n}" for n in range(DEPENDENCIES))
    wheels.append(build_wheel(work, "bench-reads-app", "1.0", requires_dist=requires))
    twine(stack.index.url + "/", wheels)


def _resolve(index: str, work: Path, tool: str = "uv") -> float:
    requirements = work / "requirements.in"
    requirements.write_text("bench-reads-app\n")
    command = (
        [UV, "pip", "compile", str(requirements), "--index-url", index, "--no-cache",
         "--python-version", "3.11", "--quiet", "--output-file", str(work / "out.txt")]
        if tool == "uv"
        # pip reads no ranges: without PEP 658 it downloads each wheel to learn its metadata.
        else [sys.executable, "-m", "pip", "--isolated", "install", "--dry-run",
              "--ignore-installed", "--no-cache-dir", "--quiet", "--disable-pip-version-check",
              "--index-url", index, "-r", str(requirements)]
    )  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def _counted(counter: Counter, index: str, work: Path, tool: str = "uv") -> tuple[int, float]:
    before = counter.bytes
    seconds = _resolve(index, work, tool)
    return counter.bytes - before, seconds


def _page_latency(pid: int, gateway: str, index: str) -> tuple[float, float, float]:
    page = "/simple/bench-reads-app/"
    ours, theirs = [], []
    _timed_get(gateway + page)  # the first visit reads the facts records into memory
    cpu_before = cpu_of(pid)
    for _ in range(PAGES):
        ours.append(_timed_get(gateway + page))
    cpu_ms = (cpu_of(pid) - cpu_before) * 1000 / PAGES
    for _ in range(PAGES):
        theirs.append(_timed_get(index + page))
    return statistics.median(ours), statistics.median(theirs), cpu_ms


def _timed_get(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        response.read()
    return time.perf_counter() - started
