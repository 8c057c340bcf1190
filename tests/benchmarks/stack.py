"""A gateway process on a real SeaweedFS + pypiserver, for benchmarks that time it end to end."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from gateway.devstack import Server, free_port, start_pypiserver, start_seaweedfs, write_htpasswd
from gateway.hashed_secrets import hash_secret
from tests.conftest import twine_command
from tests.distributions import build_wheel

USER, PASSWORD = "bench", "bench-password"
AUTHORIZATION = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
UPLOAD_V2 = "application/vnd.pypi.upload.v2+json"
META = {"api-version": "2.0"}
HEADERS = {"Authorization": AUTHORIZATION, "Content-Type": UPLOAD_V2}
BUCKET = "bench"
T = TypeVar("T")


@dataclass
class Stack:
    s3: Server
    index: Server
    gateway: subprocess.Popen[bytes]
    api: str
    workdir: Path

    def cpu_seconds(self) -> dict[str, float]:
        """User+system CPU seconds so far of the gateway and of SeaweedFS."""
        return {"gateway": cpu_of(self.gateway.pid), "s3": cpu_of(self.s3.process.pid)}

    def gateway_rss_kib(self) -> int:
        for line in Path(f"/proc/{self.gateway.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")


def cpu_of(pid: int) -> float:
    """User+system CPU seconds so far of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def s3_calls(api: str) -> dict[str, float]:
    """S3 requests a gateway has made so far, by operation, from its ``/metrics`` page
    (the count of its S3 latency histogram, one observation per call)."""
    base = api.split("/upload/", 1)[0]
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        page = response.read().decode()
    return parse_counts(page, "upload_gateway_s3_seconds_count", "operation")


def backend_calls(api: str) -> dict[str, float]:
    """Calls a gateway has made to the backing index so far, by operation."""
    base = api.split("/upload/", 1)[0]
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        page = response.read().decode()
    return parse_counts(page, "upload_gateway_backend_seconds_count", "operation")


def parse_counts(page: str, metric: str, label: str) -> dict[str, float]:
    counts: dict[str, float] = {}
    for line in page.splitlines():
        if line.startswith(metric + "{"):
            labels, value = line[len(metric) + 1 :].rsplit("} ", 1)
            name = next(
                (
                    v.strip('"')
                    for k, _, v in (p.partition("=") for p in labels.split(","))
                    if k == label
                ),
                "",
            )
            counts[name] = counts.get(name, 0) + float(value)
    return counts


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _config(workdir: Path, port: int, s3: Server, index: Server) -> Path:
    path = workdir / "gateway.toml"
    extra = f"""
[sessions]
max_open_per_principal = 10000  # the load run's publishers all log in as one principal
[uploads]
mechanisms = [
    "vnd-uploadgateway-s3-presigned-v1", "vnd-uploadgateway-resumable-v1", "http-post-bytes"
]
max_file_size = {4 << 30}
defer_validation_above = {4 << 30}
"""
    path.write_text(gateway_toml(port, s3, BUCKET, backend_toml("pypiserver", index), extra))
    return path


def gateway_toml(port: int, s3: Server, bucket: str, backend: str, extra: str = "") -> str:
    """A benchmark gateway's configuration: its port, its bucket on ``s3``, the index
    (``backend``, a ``[backend]`` section), the bench user, warnings only, then ``extra``."""
    return f"""
[server]
port = {port}
public_base_url = "http://127.0.0.1:{port}"
[s3]
endpoint_url = "{s3.url}"
bucket = "{bucket}"
access_key_id = "bench"
secret_access_key = "bench-secret"
{backend}
[[auth.principals]]
name = "{USER}"
password_hash = "{hash_secret(PASSWORD)}"
[logging]
level = "warning"
{extra}"""


def backend_toml(kind: str, index: Server) -> str:
    """The ``[backend]`` section for the bench user on ``index`` (pypiserver or devpi)."""
    if kind == "devpi":
        upload = index.extra["index_url"]
        simple = upload + "+simple/"
    else:
        upload, simple = index.url + "/", index.url + "/simple/"
    return f"""[backend]
kind = "{kind}"
upload_url = "{upload}"
simple_url = "{simple}"
username = "{USER}"
password = "{PASSWORD}"
"""


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    workdir.mkdir(parents=True, exist_ok=True)
    s3 = start_seaweedfs(workdir / "s3", workdir / "seaweedfs.log")
    try:
        htpasswd = workdir / "htpasswd"
        write_htpasswd(htpasswd, {USER: PASSWORD})
        index = start_pypiserver(workdir / "packages", htpasswd, workdir / "pypiserver.log")
        try:
            gateway, api = start_gateway(workdir, s3, index)
            try:
                yield Stack(s3, index, gateway, api, workdir)
            finally:
                gateway.terminate()
                gateway.wait(30)
        finally:
            index.stop()
    finally:
        s3.stop()


def start_gateway(workdir: Path, s3: Server, index: Server) -> tuple[subprocess.Popen[bytes], str]:
    """One more gateway process on the stack's bucket (a replica); returns it and its API."""
    port = free_port()
    config = _config(workdir, port, s3, index)
    gateway = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=(workdir / f"gateway-{port}.log").open("ab"),
        env={**os.environ},
    )
    wait_ready(f"http://127.0.0.1:{port}/readyz")
    return gateway, f"http://127.0.0.1:{port}/upload/2.0/"


def twine(url: str, paths: list[Path]) -> float:
    """Seconds `twine upload` takes to send ``paths`` to ``url`` as the bench user."""
    command, env = twine_command(url, *paths, username=USER, password=PASSWORD)
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready")


def alternate(round_number: int, *runs: Callable[[], T]) -> list[Callable[[], T]]:
    """``runs`` in order in even rounds and reversed in odd ones: the index gets slower as it
    fills up, so always running one side first would favour it."""
    return list(runs) if round_number % 2 == 0 else list(reversed(runs))


def warm_up(stack: Stack, workdir: Path, size: int) -> None:
    """One untimed twine upload of ``size`` bytes: pypiserver's first large upload costs it
    about half the CPU of any later one (measured: 5.9 against 10-13 CPU-seconds for 500 MiB),
    which would favour whichever side happened to run first."""
    wheel = build_wheel(workdir, f"bench-warm-up-{size}", "1.0", payload=os.urandom(size))
    twine(stack.index.url + "/", [wheel])
    wheel.unlink()
