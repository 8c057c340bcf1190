"""The short chaos run (R-W12): two replicas behind nginx on a three-volume-server SeaweedFS,
ten publishers with the bundled client (some releases then installed with pip through the
read path), one rolling restart and one SIGKILL of a replica, then the checker over the whole
history. About two minutes. The long run: ``python -m tests.chaos``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chaos.run import ChaosConfig, run_chaos


@pytest.mark.chaos
async def test_nothing_is_lost_through_a_rolling_restart_and_a_kill(tmp_path: Path) -> None:
    config = ChaosConfig(
        workdir=tmp_path,
        seconds=30,
        replicas=2,
        publishers=10,
        seed=27,
        kinds=("rolling-restart", "kill-replica"),
        gap=(4.0, 4.0),  # both events within the 30 s of load
        retention=15,  # the lease check, 11 s after the last release, still sees its session
    )
    report = await run_chaos(config)
    report.write(tmp_path / "report.json")
    kinds = sorted(event["kind"] for event in report.events)
    assert {"kill-replica", "rolling-restart"} <= set(kinds), kinds
    assert report.verdict["violations"] == [], json.dumps(report.verdict, indent=2)
    assert report.verdict["objects_seen"] > 0, "the bucket checks looked at nothing"
    assert report.verdict["sessions_seen"] > 0, "the lease check looked at nothing"
    assert report.figures["releases_failed"] == 0, [
        (a["project"], a["version"], a["error"], a["stderr"][-1500:])
        for a in report.history
        if a["status"] != "published"
    ]
    assert report.figures["releases_published"] >= 10
    assert report.figures["pip_installs_from_read_path"].get("ok", 0) >= 1, report.figures
