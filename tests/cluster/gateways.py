"""Gateway replicas as separate processes (``python -m gateway serve``), each restartable on
its own port so that the load balancer's upstream list never changes: what a Deployment's
pods behind a Service look like."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.devstack import StackError, http_status

DRAIN_TIMEOUT = 10  # server.drain_timeout; deploy/ sets terminationGracePeriodSeconds above it


@dataclass
class Wiring:
    """Where every replica's configuration points."""

    public_url: str  # the load balancer: every link a replica answers goes through it
    s3_url: str
    index_url: str
    index_user: str
    index_password: str
    bucket: str
    prefix: str
    principals_toml: str
    retention: int = 30  # sessions.retention: how long an ended session keeps its status


class GatewayReplica:
    def __init__(self, name: str, port: int, workdir: Path, wiring: Wiring) -> None:
        self.name = name
        self.port = port
        self.config = workdir / f"{name}.toml"
        self.log_path = workdir / "logs" / f"{name}.log"
        self.config.write_text(_config(port, wiring))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise StackError(f"{self.name} exited early; see {self.log_path}")
            if http_status(self.url + "/readyz") == 200:
                return
            time.sleep(0.1)
        raise StackError(f"{self.name} did not become ready; see {self.log_path}")

    def terminate(self) -> float:
        """SIGTERM, then wait for the drain to end (what a pod deletion does); seconds taken."""
        started = time.monotonic()
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(DRAIN_TIMEOUT + 10)
            except subprocess.TimeoutExpired:
                self.kill()
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL: the node is gone, leases and requests in flight with it."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _config(port: int, wiring: Wiring) -> str:
    return f"""
[server]
port = {port}
public_base_url = "{wiring.public_url}"
drain_timeout = {DRAIN_TIMEOUT}
trusted_proxies = ["127.0.0.1/32"]
[s3]
endpoint_url = "{wiring.s3_url}"
bucket = "{wiring.bucket}"
prefix = "{wiring.prefix}"
access_key_id = "cluster"
secret_access_key = "cluster-secret"
[backend]
kind = "pypiserver"
upload_url = "{wiring.index_url}/"
simple_url = "{wiring.index_url}/simple/"
username = "{wiring.index_user}"
password = "{wiring.index_password}"
[sessions]
sweep_interval = 2
retention = {wiring.retention}
[publish]
sync_wait = 1
lease = 5
[stage]
redirect_downloads = false
[proxy]
# The load balancer's /simple/ and /packages/ are the gateway's read path (docs/reads.md).
read_proxy = true
[logging]
json = true
{wiring.principals_toml}
"""
