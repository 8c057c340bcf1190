"""``python -m tests.chaos --minutes 10``: the long reliability run (R-W12). Writes
``report.json`` (history, nemesis events, checker verdict, figures) and ``report.md`` into
``--out``; exits 1 when the checker found a violation."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from tests.chaos.nemesis import KINDS
from tests.chaos.run import ChaosConfig, Report, run_chaos


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--publishers", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default=",".join(KINDS), help="nemesis kinds, comma-separated")
    parser.add_argument("--out", type=Path, default=Path("chaos-report"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    config = ChaosConfig(
        workdir=Path(tempfile.mkdtemp(prefix="chaos-")),
        seconds=args.minutes * 60,
        replicas=args.replicas,
        publishers=args.publishers,
        seed=args.seed,
        kinds=tuple(args.faults.split(",")),
    )
    print(f"chaos: {args.minutes} min, data and logs in {config.workdir}", file=sys.stderr)
    report = asyncio.run(run_chaos(config))
    report.write(args.out / "report.json")
    (args.out / "report.md").write_text(summary(report))
    print(summary(report))
    return 0 if report.ok else 1


def summary(report: Report) -> str:
    lines = ["# Chaos run", "", f"verdict: {'PASS' if report.ok else 'FAIL'}", ""]
    lines += [f"- {v}" for v in report.verdict["violations"][:50]]
    lines += ["", "## Figures", "", "```json", json.dumps(report.figures, indent=2), "```"]
    lines += ["", "## Nemesis", ""]
    lines += [
        f"- {e['kind']} {e['target']}: {e['ended'] - e['started']:.1f}s {e['detail']}"
        for e in report.events
    ]
    lines += ["", f"config: {report.config}", f"timings: {report.timings}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
