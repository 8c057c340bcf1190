"""``make bench``: start a local stack, run every benchmark, write bench-results.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path

from tests.benchmarks import (
    control,
    legacy,
    load,
    mechanisms,
    publish,
    reads,
    release,
    release400,
    scale,
    staged,
    upload,
)
from tests.benchmarks.stack import running_stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024, help="upload size (default 1 GiB)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("bench-results.json"))
    parser.add_argument("--clients", type=int, default=200, help="simulated publishers (load)")
    parser.add_argument(
        "--only",
        choices=[
            "upload",
            "mechanisms",
            "control",
            "scale",
            "release",
            "publish",
            "legacy",
            "staged",
            "load",
            "reads",
        ],
        help="run one group only",
    )
    parser.add_argument(
        "--retained", type=int, default=10_000, help="retained sessions in the sweep (scale)"
    )
    args = parser.parse_args()
    results: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as workdir,
        running_stack(Path(workdir)) as stack,
    ):
        if args.only in (None, "upload"):
            print(f"upload: {args.size_mib} MiB, {args.rounds} alternating rounds", flush=True)
            results |= asyncio.run(upload.measure(stack, args.size_mib << 20, args.rounds))
        if args.only in (None, "mechanisms"):
            print(f"mechanisms: {args.size_mib} MiB, {args.rounds} alternating rounds", flush=True)
            results |= asyncio.run(mechanisms.measure(stack, args.size_mib << 20, args.rounds))
        if args.only in (None, "control"):
            print(f"control: status and create, {args.rounds} alternating rounds", flush=True)
            results |= asyncio.run(control.measure(stack, args.rounds))
        if args.only in (None, "scale"):
            print(f"scale: 1 vs 400 files, sweep of {args.retained} retained", flush=True)
            results |= asyncio.run(scale.measure(stack, args.retained))
            print("scale: a 400-file release, the bundled client vs twine", flush=True)
            results |= release400.measure(stack)
        if args.only in (None, "release"):
            print("release: 51 and 401 files, publish and stage, vs twine", flush=True)
            results |= release.measure(stack)
        if args.only in (None, "publish"):
            print(f"publish: 200 MiB wheel, 10 x 20 MiB release, {args.rounds} rounds", flush=True)
            results |= publish.measure(stack, args.rounds)
        if args.only in (None, "legacy"):
            print(f"legacy: 500 MiB wheel through /legacy/, {args.rounds} rounds", flush=True)
            results |= legacy.measure(stack, args.rounds)
        if args.only in (None, "staged"):
            print(
                f"staged: 200 MiB wheel, twine to /legacy/+stage/, {args.rounds} rounds", flush=True
            )
            results |= staged.measure(stack, args.rounds)
        if args.only in (None, "reads"):
            print(f"reads: uv resolving 105 MiB of wheels, {args.rounds} rounds", flush=True)
            results |= reads.measure(stack, args.rounds)
        if args.only in (None, "load"):
            print(f"load: {args.clients} concurrent publishers, 1 then 2 replicas", flush=True)
            results |= load.measure(stack, args.clients)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    for name, value in results.items():
        print(f"{name} = {value}")


if __name__ == "__main__":
    main()
