"""One chaos run: start the cluster, run the workload and the nemesis together, let the sweep
settle, check the invariants, and write the report (R-W12)."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.checker import Verdict, check, check_leases
from tests.chaos.figures import figures
from tests.chaos.nemesis import KINDS, Nemesis
from tests.chaos.workload import Workload
from tests.cluster import PASSWORD, USER, start_cluster
from tests.cluster.gateways import DRAIN_TIMEOUT


@dataclass
class ChaosConfig:
    workdir: Path
    seconds: float = 600
    replicas: int = 3
    publishers: int = 10
    seed: int = 1
    kinds: tuple[str, ...] = KINDS
    gap: tuple[float, float] = (5.0, 15.0)
    retention: int = 20
    volume_servers: int = 3


@dataclass
class Report:
    config: dict[str, Any]
    history: list[dict[str, Any]]
    events: list[dict[str, Any]]
    verdict: dict[str, Any]
    figures: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.verdict["ok"])

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2, default=str))


async def run_chaos(config: ChaosConfig) -> Report:
    began = time.monotonic()
    cluster = await asyncio.to_thread(
        start_cluster, config.workdir, config.replicas, config.volume_servers, config.retention
    )
    try:
        started = time.monotonic()
        until = started + config.seconds
        nemesis = Nemesis(cluster, config.seed, config.kinds, config.gap)
        workload = Workload(
            cluster.api,
            cluster.simple_url,
            USER,
            PASSWORD,
            config.workdir,
            config.publishers,
            config.seed,
        )
        faults = asyncio.create_task(asyncio.to_thread(nemesis.run, until))
        verdict = Verdict()
        try:
            # The load lasts the configured seconds and until every fault kind has played.
            history = await workload.run(
                lambda: time.monotonic() < until or not nemesis.round_played.is_set()
            )
            # Leases lapse (5 s) and are taken over by a sweep (every 2 s); checked before
            # the retention purges the sessions the last releases ended.
            await asyncio.sleep(5 + 3 * 2)
            await check_leases(cluster, verdict)
        finally:
            events = await faults
        loaded = time.monotonic()
        # The sweep frees what ended sessions held once their retention is over.
        await asyncio.sleep(config.retention + 5)
        await check(cluster, history, config.retention + 10, verdict)
        return Report(
            config={**config.__dict__, "workdir": str(config.workdir), "drain": DRAIN_TIMEOUT},
            history=[a.as_dict() for a in history],
            events=[e.as_dict() for e in events],
            verdict=verdict.as_dict(),
            figures=figures(history, events, config.workdir / "nginx" / "access.log"),
            timings={
                "cluster_start": round(started - began, 1),
                "load": round(loaded - started, 1),
                "total": round(time.monotonic() - began, 1),
            },
        )
    finally:
        await asyncio.to_thread(cluster.stop)
