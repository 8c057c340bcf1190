"""A SeaweedFS cluster as an operator runs one: a master, volume servers, a filer and an S3
gateway as separate ``weed`` processes on free loopback ports (R-W12). Volumes are replicated
``001`` (a second copy on another server of the same rack), so one volume server may be lost."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gateway.devstack import Server, executable, free_port, http_status, launch

REPLICATION = "001"


@dataclass
class WeedProcess:
    """One ``weed`` server, restartable with the same flags (same ports, same data)."""

    name: str
    command: list[str]
    url: str
    log_path: Path
    server: Server | None = None

    def start(self, ready_path: str = "/") -> None:
        url = self.url + ready_path
        self.server = launch(
            self.name,
            self.command,
            self.url,
            self.log_path,
            ready=lambda: http_status(url) is not None,
            env={"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
        )

    def kill(self) -> None:
        """SIGKILL: a node lost, nothing flushed."""
        if self.server is not None and self.server.alive():
            os.killpg(self.server.process.pid, signal.SIGKILL)
            self.server.process.wait()

    def stop(self, timeout: float = 10) -> None:
        if self.server is not None:
            self.server.stop(timeout)

    def alive(self) -> bool:
        return self.server is not None and self.server.alive()


def _ports(*names: str) -> dict[str, int]:
    return {name: free_port() for name in names}


@dataclass
class SeaweedCluster:
    master: WeedProcess
    volumes: list[WeedProcess]
    filer: WeedProcess
    s3: WeedProcess

    @property
    def s3_url(self) -> str:
        return self.s3.url

    def start(self) -> None:
        try:
            self.master.start("/cluster/status")
            for volume in self.volumes:
                volume.start("/status")
            self.filer.start("/")
            self.s3.start("/")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Everything at once: the filer and volume servers each take 10 s to give up on
        their peers after SIGTERM, and what they hold is thrown away; SIGKILL after 1 s."""
        processes = [self.master, *self.volumes, self.filer, self.s3]
        with ThreadPoolExecutor(len(processes)) as pool:
            list(pool.map(lambda process: process.stop(timeout=1), processes))


def seaweed_cluster(workdir: Path, volume_servers: int = 3) -> SeaweedCluster:
    """The processes' commands (not started): ``cluster.start()`` launches them in order."""
    weed = executable("weed")
    loopback = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    master = _ports("port", "port.grpc")
    master_address = f"127.0.0.1:{master['port']}.{master['port.grpc']}"
    logs = workdir / "logs"
    master_process = WeedProcess(
        "weed-master",
        [
            weed,
            "master",
            *loopback,
            *_flags(master),
            f"-mdir={_dir(workdir / 'master')}",
            f"-defaultReplication={REPLICATION}",
            # Small volumes, so the cluster grows several and each server holds copies.
            "-volumeSizeLimitMB=64",
            "-volumePreallocate=false",
            "-telemetry=false",
        ],
        f"http://127.0.0.1:{master['port']}",
        logs / "weed-master.log",
    )
    volumes = [_volume(weed, loopback, master_address, workdir, i) for i in range(volume_servers)]
    filer = _ports("port", "port.grpc")
    filer_process = WeedProcess(
        "weed-filer",
        [
            weed,
            "filer",
            *loopback,
            *_flags(filer),
            f"-master={master_address}",
            f"-defaultReplicaPlacement={REPLICATION}",
            f"-defaultStoreDir={_dir(workdir / 'filer')}",
        ],
        f"http://127.0.0.1:{filer['port']}",
        logs / "weed-filer.log",
    )
    s3 = _ports("port", "port.grpc", "port.iceberg", "port.lance")
    s3_process = WeedProcess(
        "weed-s3",
        [
            weed,
            "s3",
            "-ip.bind=127.0.0.1",
            *_flags(s3),
            f"-filer=127.0.0.1:{filer['port']}.{filer['port.grpc']}",
        ],
        f"http://127.0.0.1:{s3['port']}",
        logs / "weed-s3.log",
    )
    return SeaweedCluster(master_process, volumes, filer_process, s3_process)


def _volume(
    weed: str, loopback: list[str], master_address: str, workdir: Path, index: int
) -> WeedProcess:
    ports = _ports("port", "port.grpc")
    return WeedProcess(
        f"weed-volume-{index}",
        [
            weed,
            "volume",
            *loopback,
            *_flags(ports),
            f"-dir={_dir(workdir / f'volume-{index}')}",
            f"-mserver={master_address}",
            "-max=30",
            "-minFreeSpace=1",
        ],
        f"http://127.0.0.1:{ports['port']}",
        workdir / "logs" / f"weed-volume-{index}.log",
    )


def _flags(ports: dict[str, int]) -> list[str]:
    return [f"-{name}={port}" for name, port in ports.items()]


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
