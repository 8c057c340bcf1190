"""The review step's command runner (R-W11): real subprocesses, their output capped, their
time bounded, at most ``review_concurrency`` at once."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.gates.review_runner import ReviewRunner
from gateway.settings import PolicySettings


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code, "{file}"]


async def test_the_file_is_passed_by_path_under_its_own_name() -> None:
    runner = ReviewRunner(PolicySettings())
    code = "import sys, pathlib; p = pathlib.Path(sys.argv[1]); print(p.name, p.read_bytes())"
    verdict = await runner.run(python(code), "demo-1.0.tar.gz", chunks(b"ab", b"cd"))
    assert verdict.passed
    assert verdict.output == "demo-1.0.tar.gz b'abcd'"


async def test_output_is_capped_and_a_non_zero_exit_fails() -> None:
    runner = ReviewRunner(PolicySettings(review_output_limit=100))
    verdict = await runner.run(python("print('x' * 5000); raise SystemExit(3)"), "f.whl", chunks())
    assert not verdict.passed
    assert verdict.output.startswith("x" * 100 + "\n[4901 more bytes of output not kept]")


async def test_a_silent_failure_says_its_exit_status() -> None:
    runner = ReviewRunner(PolicySettings())
    verdict = await runner.run(python("raise SystemExit(2)"), "f.whl", chunks())
    assert verdict == verdict.__class__(False, "the review command exited with status 2")


async def test_a_command_that_cannot_start_fails() -> None:
    runner = ReviewRunner(PolicySettings())
    verdict = await runner.run(["/nonexistent/scanner", "{file}"], "f.whl", chunks())
    assert not verdict.passed
    assert "could not run" in verdict.output


async def test_a_command_past_its_timeout_is_killed_and_fails() -> None:
    runner = ReviewRunner(PolicySettings(review_timeout=1))
    began = time.monotonic()
    verdict = await runner.run(python("import time; time.sleep(60)"), "f.whl", chunks())
    assert not verdict.passed
    assert verdict.output == "the review command did not finish in 1s"
    assert time.monotonic() - began < 30  # killed, not waited out


async def test_at_most_review_concurrency_commands_run_at_once() -> None:
    runner = ReviewRunner(PolicySettings(review_concurrency=1))
    code = "import time; print(time.monotonic()); time.sleep(0.5); print(time.monotonic())"
    verdicts = await asyncio.gather(
        *(runner.run(python(code), "f.whl", chunks()) for _ in range(2))
    )
    (start_a, end_a), (start_b, end_b) = (map(float, v.output.split()) for v in verdicts)
    assert end_a <= start_b or end_b <= start_a  # one after the other


async def test_a_canceled_review_kills_its_command(tmp_path: Path) -> None:
    runner = ReviewRunner(PolicySettings())
    pid_file = tmp_path / "pid"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    review = asyncio.create_task(runner.run(python(code), "f.whl", chunks()))
    for _ in range(500):  # the interpreter starts, then writes its pid
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.02)
    review.cancel()
    with pytest.raises(asyncio.CancelledError):
        await review
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)  # gone (reaped), not left running
