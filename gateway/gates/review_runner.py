"""Runs the review command of a project's policy on one file (R-W11, docs/policy.md).

The command is an argument vector, never a shell line: ``{file}`` in any argument becomes the
path of the file, downloaded from S3 into a private temporary directory under its own
filename (scanners such as GuardDog tell a wheel from an sdist by its name). At most
``review_concurrency`` commands run at once per process; one that outlives
``review_timeout`` is killed and fails. Its stdout and stderr, interleaved, are kept up to
``review_output_limit`` bytes: that is the finding a failed review reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from gateway.settings import PolicySettings

FILE_PLACEHOLDER = "{file}"
READ_BLOCK = 64 * 1024


@dataclass(frozen=True)
class Verdict:
    passed: bool
    output: str  # what the command printed, capped; or why it could not run


class ReviewRunner:
    def __init__(self, settings: PolicySettings):
        self._slots = asyncio.Semaphore(settings.review_concurrency)
        self._timeout = settings.review_timeout
        self._limit = settings.review_output_limit

    @property
    def timeout(self) -> int:
        return self._timeout

    async def run(self, command: list[str], filename: str, chunks: AsyncIterator[bytes]) -> Verdict:
        """The command's verdict on the bytes of ``chunks`` saved as ``filename``: exit 0
        passes."""
        async with self._slots:
            with tempfile.TemporaryDirectory(prefix="gateway-review-") as directory:
                path = Path(directory) / Path(filename).name
                with path.open("wb") as out:
                    await _save(chunks, out)
                argv = [part.replace(FILE_PLACEHOLDER, str(path)) for part in command]
                return await self._execute(argv)

    async def _execute(self, argv: list[str]) -> Verdict:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
        except OSError as exc:  # not installed, not executable: the release cannot pass
            return Verdict(False, f"the review command could not run: {exc}")
        assert process.stdout is not None
        try:
            output = await asyncio.wait_for(self._capped(process.stdout), self._timeout)
            code = await asyncio.wait_for(process.wait(), self._timeout)
        except TimeoutError:
            await _kill(process)
            return Verdict(False, f"the review command did not finish in {self._timeout}s")
        except asyncio.CancelledError:
            # The gateway shuts down: no command outlives it (the review's lease lapses and
            # another replica's sweep runs it again).
            await asyncio.shield(_kill(process))
            raise
        text = output.decode("utf-8", errors="replace").strip()
        if code != 0 and not text:
            text = f"the review command exited with status {code}"
        return Verdict(code == 0, text)

    async def _capped(self, stream: asyncio.StreamReader) -> bytes:
        """The first ``limit`` bytes of the output; the rest is read and dropped, so that
        a chatty command never blocks on a full pipe."""
        kept = bytearray()
        dropped = 0
        while block := await stream.read(READ_BLOCK):
            room = self._limit - len(kept)
            kept += block[:room]
            dropped += max(0, len(block) - room)
        if dropped:
            kept += f"\n[{dropped} more bytes of output not kept]".encode()
        return bytes(kept)


async def _save(chunks: AsyncIterator[bytes], out: BinaryIO) -> None:
    async for chunk in chunks:
        await asyncio.to_thread(out.write, chunk)


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()
