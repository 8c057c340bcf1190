"""``python -m tests.cluster [--replicas 3] [--dir DIR]``: start the cluster and keep it up
until Ctrl+C, printing where everything is and how to publish to it."""

from __future__ import annotations

import argparse
import contextlib
import signal
import tempfile
import threading
from pathlib import Path

from tests.cluster import PASSWORD, USER, start_cluster


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster", description=__doc__)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="data and logs (default: temp)")
    args = parser.parse_args()
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="cluster-"))
    cluster = start_cluster(workdir, replicas=args.replicas)
    try:
        print(f"load balancer  {cluster.url}  (nginx, round robin over {args.replicas} replicas)")
        for replica in cluster.replicas:
            print(f"  {replica.name}  {replica.url}  pid {replica.process and replica.process.pid}")
        print(f"S3             {cluster.seaweed.s3_url}  (bucket cluster, prefix {cluster.prefix})")
        for volume in cluster.seaweed.volumes:
            print(f"  {volume.name}  {volume.url}")
        print(f"index          {cluster.index_url}/simple/")
        print(f"read path      {cluster.simple_url}  (the gateway's simple API)")
        print(f"data and logs  {workdir}")
        print(
            f"\npublish:  upload-gateway publish --repository-url {cluster.api} "
            f"-u {USER} -p {PASSWORD} dist/*\n"
            f"install:  pip install --index-url {cluster.simple_url} NAME\n"
            "Ctrl+C stops everything."
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
