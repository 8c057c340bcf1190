"""A whole deployment on one machine, as an operator runs it (R-W12): gateway replicas behind
Debian's nginx, on one bucket of a SeaweedFS cluster (a master, three volume servers with
replication ``001``, a filer and an S3 endpoint, each its own ``weed`` process), pypiserver
behind them, and fault proxies on the replicas' way to S3 and to the index.

``python -m tests.cluster`` starts one and prints how to publish to it; the chaos test
(tests/chaos/) starts one per run. Everything binds to loopback on free ports.
"""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from gateway.devstack import Server, free_port, start_pypiserver, write_htpasswd
from gateway.hashed_secrets import hash_secret
from tests.cluster.gateways import GatewayReplica, Wiring
from tests.cluster.nginx import start_nginx
from tests.cluster.proxies import ProxyThread
from tests.cluster.seaweed import SeaweedCluster, seaweed_cluster
from tests.faults import FaultProxy

BUCKET = "cluster"
USER, PASSWORD = "alice", "alice-password"
INDEX_USER, INDEX_PASSWORD = "indexer", "index-secret"


@dataclass
class Cluster:
    workdir: Path
    seaweed: SeaweedCluster
    pypiserver: Server
    proxies: ProxyThread
    s3_proxy: FaultProxy
    index_proxy: FaultProxy
    replicas: list[GatewayReplica]
    nginx: Server
    prefix: str
    servers: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The load balancer: where clients publish."""
        return self.nginx.url

    @property
    def api(self) -> str:
        return self.nginx.url + "/upload/2.0/"

    @property
    def simple_url(self) -> str:
        """The gateway's read path, through the load balancer: where installers read."""
        return self.nginx.url + "/simple/"

    @property
    def index_url(self) -> str:
        return self.pypiserver.url

    def stop(self) -> None:
        for replica in self.replicas:
            replica.kill()
        self.nginx.stop()
        self.proxies.close()
        self.pypiserver.stop()
        self.seaweed.stop()


def start_cluster(
    workdir: Path, replicas: int = 3, volume_servers: int = 3, retention: int = 30
) -> Cluster:
    """Start everything, in dependency order; on failure stop what did start."""
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "logs"
    seaweed = seaweed_cluster(workdir / "seaweedfs", volume_servers)
    seaweed.start()
    started: list[object] = [seaweed]
    try:
        htpasswd = workdir / "htpasswd"
        write_htpasswd(htpasswd, {INDEX_USER: INDEX_PASSWORD})
        pypiserver = start_pypiserver(workdir / "packages", htpasswd, logs / "pypiserver.log")
        started.append(pypiserver)
        proxies = ProxyThread()
        started.append(proxies)
        s3_proxy = proxies.proxy(seaweed.s3_url)
        index_proxy = proxies.proxy(pypiserver.url)
        ports = [free_port() for _ in range(replicas)]
        nginx = start_nginx(workdir / "nginx", ports, logs / "nginx.log")
        started.append(nginx)
        wiring = Wiring(
            public_url=nginx.url,
            s3_url=s3_proxy.url,
            index_url=index_proxy.url.rstrip("/"),  # simple_url's path is the read path's
            index_user=INDEX_USER,
            index_password=INDEX_PASSWORD,
            bucket=BUCKET,
            prefix="c-" + secrets.token_hex(4),
            principals_toml=_principals(),
            retention=retention,
        )
        gateways = [GatewayReplica(f"gateway-{i}", p, workdir, wiring) for i, p in enumerate(ports)]
        cluster = Cluster(
            workdir,
            seaweed,
            pypiserver,
            proxies,
            s3_proxy,
            index_proxy,
            gateways,
            nginx,
            wiring.prefix,
        )
        started.extend(gateways)
        with ThreadPoolExecutor(len(gateways)) as pool:
            list(pool.map(lambda replica: replica.start(), gateways))
    except BaseException:
        for thing in reversed(started):
            for stop in ("kill", "stop", "close"):
                if hasattr(thing, stop):
                    getattr(thing, stop)()
                    break
        raise
    return cluster


def _principals() -> str:
    return f"""
[[auth.principals]]
name = "{USER}"
password_hash = "{hash_secret(PASSWORD)}"
audit = true
"""
