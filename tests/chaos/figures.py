"""The report's figures, from the history, the nemesis events and nginx's access log."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from statistics import quantiles
from typing import Any

from tests.chaos.nemesis import Event
from tests.chaos.workload import Attempt

RESTARTS = ("rolling-restart", "kill-replica")
AFTERMATH = 10.0  # seconds after an event still counted as "during" it (leases, back-off)
ACCESS = re.compile(r'^(?P<at>[\d.]+) \S+ "(?P<request>[^"]*)" (?P<status>\d{3}) ')


def figures(history: list[Attempt], events: list[Event], access_log: Path) -> dict[str, Any]:
    published = [a for a in history if a.status == "published"]
    during = [a for a in published if _disrupted(a, events)]
    calm = [a for a in published if not _disrupted(a, events)]
    restarts = [e for e in events if e.kind in RESTARTS]
    restarted = [a for a in published if _disrupted(a, restarts)]
    answers = _access(access_log)
    return {
        "releases_attempted": len(history),
        "releases_published": len(published),
        "releases_failed": len(history) - len(published),
        "files_published": sum(len(a.files) for a in published),
        "client_retries_by_cause": dict(Counter(_cause(r) for a in history for r in a.retries)),
        "client_5xx_after_retries": sum(1 for a in history if _status(a) >= 500),
        "publish_seconds_calm": _percentiles(calm),
        "publish_seconds_during_faults": _percentiles(during),
        "publish_seconds_during_restarts": _percentiles(restarted),
        "publish_seconds_without_restarts": _percentiles(
            [a for a in published if a not in restarted]
        ),
        "pip_installs_from_stage": dict(Counter(a.pip for a in history if a.pip)),
        "pip_installs_from_read_path": dict(
            Counter(
                "ok" if a.read_install else "failed" for a in history if a.read_install is not None
            )
        ),
        "lb_answers_by_status": dict(sorted(Counter(s for _, s in answers).items())),
        "volume_loss": [
            _volume_loss(e, history, answers) for e in events if e.kind == "kill-volume"
        ],
    }


def _disrupted(attempt: Attempt, events: list[Event]) -> bool:
    return any(attempt.started < e.ended + AFTERMATH and attempt.ended > e.started for e in events)


def _percentiles(attempts: list[Attempt]) -> dict[str, float | int]:
    seconds = sorted(a.seconds for a in attempts)
    if len(seconds) < 2:
        return {"n": len(seconds), "p50": round(seconds[0], 2) if seconds else 0, "p99": 0}
    cuts = quantiles(seconds, n=100, method="inclusive")
    return {"n": len(seconds), "p50": round(cuts[49], 2), "p99": round(cuts[98], 2)}


def _cause(retry: str) -> str:
    """A retry's cause without the URL or numbers that make each one unique."""
    retry = re.sub(r"^[\w.-]+\.(whl|tar\.gz): ", "FILE: ", retry)
    return re.sub(r"\d+(\.\d+)?s", "Ns", re.sub(r"https?://\S+", "URL", retry))[:100]


def _status(attempt: Attempt) -> int:
    status = (attempt.error or {}).get("status")
    return int(status) if isinstance(status, int) else 0


def _access(log: Path) -> list[tuple[float, int]]:
    if not log.exists():
        return []
    answers = []
    for line in log.read_text(errors="replace").splitlines():
        match = ACCESS.match(line)
        if match:
            answers.append((float(match["at"]), int(match["status"])))
    return answers


def _volume_loss(
    event: Event, history: list[Attempt], answers: list[tuple[float, int]]
) -> dict[str, Any]:
    """What the loss of a volume server did: releases in flight meanwhile and how they ended,
    and what the load balancer answered while it was down."""
    overlapping = [a for a in history if a.started < event.ended and a.ended > event.started]
    statuses = Counter(s for at, s in answers if event.started <= at <= event.ended)
    return {
        "server": event.target,
        "down_seconds": round(event.ended - event.started, 1),
        "releases_in_flight": dict(Counter(a.status for a in overlapping)),
        "lb_answers_while_down": dict(sorted(statuses.items())),
    }
