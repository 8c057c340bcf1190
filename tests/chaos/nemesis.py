"""The nemesis: faults on a seeded schedule while the workload runs (R-W12).

- ``rolling-restart``: every replica in turn gets SIGTERM, drains, and is started again once
  it has exited (what a Deployment update does, one pod at a time);
- ``kill-replica``: SIGKILL of a random replica, started again a few seconds later;
- ``kill-volume``: a random SeaweedFS volume server SIGKILLed, brought back after a while;
- ``s3-latency`` / ``index-latency``: every chunk through the fault proxy delayed for a while.

Each event is recorded with when it started and ended, for the report's "during faults" cut.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.cluster import Cluster

KINDS = ("rolling-restart", "kill-replica", "kill-volume", "s3-latency", "index-latency")


@dataclass
class Event:
    kind: str
    target: str
    started: float
    ended: float = 0.0
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Nemesis:
    cluster: Cluster
    seed: int
    kinds: tuple[str, ...] = KINDS
    gap: tuple[float, float] = (5.0, 15.0)  # seconds of calm between two events
    events: list[Event] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    # Set once every kind has been played: a slow drain must not leave a kind out of a short
    # run, so the first round plays in full even past the deadline (the load waits for it).
    round_played: threading.Event = field(default_factory=threading.Event)

    def run(self, until: float, first_after: float = 5.0) -> list[Event]:
        """Blocking (run it in a thread): events in a seeded order until ``until``
        (``time.monotonic``) and at least one of each kind, then everything healed and
        back up."""
        rng = random.Random(self.seed)
        order = list(self.kinds)
        self._calm(first_after)
        index = 0
        while (time.monotonic() < until or index < len(order)) and not self.stop.is_set():
            if index % len(order) == 0:
                rng.shuffle(order)
            getattr(self, "_" + order[index % len(order)].replace("-", "_"))(rng)
            index += 1
            if index == len(order):
                self.round_played.set()
            self._calm(rng.uniform(*self.gap))
        self.round_played.set()
        self.heal()
        return self.events

    def heal(self) -> None:
        for proxy in (self.cluster.s3_proxy, self.cluster.index_proxy):
            self.cluster.proxies.call(proxy.heal)
        for volume in self.cluster.seaweed.volumes:
            if not volume.alive():
                volume.start("/status")
        for replica in self.cluster.replicas:
            if not replica.alive():
                replica.start()

    def _calm(self, seconds: float) -> None:
        self.stop.wait(seconds)

    def _begin(self, kind: str, target: str) -> Event:
        event = Event(kind, target, time.time())
        self.events.append(event)
        return event

    def _rolling_restart(self, rng: random.Random) -> None:
        event = self._begin("rolling-restart", "all replicas")
        drains = []
        for replica in self.cluster.replicas:
            drains.append(f"{replica.name} {replica.terminate():.1f}s")
            replica.start()
            self._calm(1.0)  # the new pod's readiness, then the next one
        event.detail = "drained: " + ", ".join(drains)
        event.ended = time.time()

    def _kill_replica(self, rng: random.Random) -> None:
        replica = rng.choice(self.cluster.replicas)
        event = self._begin("kill-replica", replica.name)
        replica.kill()
        self._calm(3.0)  # a pod restart's back-off
        replica.start()
        event.ended = time.time()

    def _kill_volume(self, rng: random.Random) -> None:
        volume = rng.choice(self.cluster.seaweed.volumes)
        event = self._begin("kill-volume", volume.name)
        volume.kill()
        self._calm(rng.uniform(10.0, 20.0))
        volume.start("/status")
        event.ended = time.time()

    def _s3_latency(self, rng: random.Random) -> None:
        self._latency("s3-latency", self.cluster.s3_proxy, rng)

    def _index_latency(self, rng: random.Random) -> None:
        self._latency("index-latency", self.cluster.index_proxy, rng)

    def _latency(self, kind: str, proxy: Any, rng: random.Random) -> None:
        latency = rng.choice((0.05, 0.2, 0.5))
        event = self._begin(kind, f"{latency}s per chunk")
        self.cluster.proxies.call(lambda: proxy.heal(latency=latency))
        self._calm(rng.uniform(5.0, 10.0))
        self.cluster.proxies.call(proxy.heal)
        event.ended = time.time()
