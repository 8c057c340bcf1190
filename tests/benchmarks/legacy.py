"""Legacy pass-through figures (issue #7), against twine straight to the same pypiserver.

legacy_proxy_throughput_ratio = MiB/s of `twine upload` of a 500 MiB wheel through the
gateway's /legacy/ ÷ MiB/s of `twine upload` of a same-sized wheel straight to the index,
alternating which goes first; legacy_proxy_rss_growth_mib = the gateway's RSS growth meanwhile.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.benchmarks.stack import Stack, alternate, twine, warm_up
from tests.distributions import build_wheel


def measure(stack: Stack, rounds: int, size: int = 500 << 20) -> dict[str, float]:
    work = stack.workdir / "legacy"
    work.mkdir(exist_ok=True)
    gateway_legacy = stack.api.replace("/upload/2.0/", "/legacy/")
    proxied, direct, growth = [], [], []
    warm_up(stack, work, size)
    baseline = stack.gateway_rss_kib()
    for r in range(rounds):
        through = build_wheel(work, f"bench-legacy-gw{r}", "1.0", payload=os.urandom(size))
        straight = build_wheel(work, f"bench-legacy-tw{r}", "1.0", payload=os.urandom(size))
        peak = [baseline]
        done = threading.Event()

        def sample(peak: list[int] = peak, done: threading.Event = done) -> None:
            while not done.is_set():
                peak.append(stack.gateway_rss_kib())
                time.sleep(0.05)

        def via_gateway(through: Path = through, done: threading.Event = done) -> None:
            sampler = threading.Thread(target=sample)
            sampler.start()
            try:
                proxied.append(through.stat().st_size / twine(gateway_legacy, [through]))
            finally:
                done.set()
                sampler.join()

        def straight_to_index(straight: Path = straight) -> None:
            direct.append(straight.stat().st_size / twine(stack.index.url + "/", [straight]))

        for run in alternate(r, via_gateway, straight_to_index):
            run()
        growth.append(max(peak) - baseline)
        print(
            f"  legacy round {r}: twine direct {direct[-1] / 2**20:.0f} MiB/s, "
            f"through the gateway {proxied[-1] / 2**20:.0f} MiB/s, "
            f"gateway RSS +{growth[-1] / 1024:.0f} MiB",
            flush=True,
        )
        through.unlink()
        straight.unlink()
    return {
        "legacy_proxy_throughput_ratio": round(max(proxied) / max(direct), 3),
        "legacy_proxy_rss_growth_mib": round(max(growth) / 1024, 1),
    }
