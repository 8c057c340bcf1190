"""The files of one release into its publishing session, pipelined: up to ``--parallel``
files at a time, each created, sent and completed, so that the creates, bytes and completes
of different files overlap. A completion the server defers (``202``) is not waited for file
by file: the deferred validations of the release are waited for once, on the session, when
every file is in. ``--skip-existing`` skips what the index or the session already has; the
first failure stops the others."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from gateway.client.api import OperationFailed, ProblemError, SessionView, UploadClient
from gateway.client.cli.output import Reporter, Transfer
from gateway.client.local import Distribution, Release
from gateway.client.state import StateFile


class ReleaseUploads:
    """Uploads the files of releases into their sessions, remembering what completed."""

    def __init__(
        self,
        args: argparse.Namespace,
        reporter: Reporter,
        client: UploadClient,
        state: StateFile,
    ) -> None:
        self._args = args
        self._reporter = reporter
        self._client = client
        self._state = state

    async def upload(self, session: SessionView, release: Release, lid: str) -> set[str]:
        """Upload the release's files; the names skipped (--skip-existing)."""
        limit = asyncio.Semaphore(self._args.parallel)
        skipped = self._already_completed(session, release, lid)
        validating: list[Distribution] = []
        completions = Completions(self._state, lid)
        with completions, self._reporter.transfer(release.files) as transfer:

            async def one(dist: Distribution) -> None:
                if dist.filename in skipped:
                    return
                async with limit:
                    self._reporter.step(f"{dist.filename}: creating the file upload")
                    status = await self._upload_one(session, dist, transfer)
                if status is None:
                    skipped.add(dist.filename)
                elif status == "processing":
                    validating.append(dist)
                else:
                    completions.add(dist.filename, dist.sha256)

            await _all_or_nothing([one(dist) for dist in release.files])
        if validating:
            await self._await_validations(session, validating, lid)
        return skipped

    def _already_completed(self, session: SessionView, release: Release, lid: str) -> set[str]:
        """--skip-existing in a reused session: files it completed with these very bytes."""
        if not self._args.skip_existing:
            return set()
        record = self._state.records().get(lid)
        done = record.completed if record is not None else {}
        same = {
            dist.filename
            for dist in release.files
            if (session.files.get(dist.filename) or {}).get("status") == "completed"
            and done.get(dist.filename) == dist.sha256
        }
        for filename in sorted(same):
            self._reporter.info(f"{filename}: already completed in this session; skipped")
        return same

    async def _await_validations(
        self, session: SessionView, validating: list[Distribution], lid: str
    ) -> None:
        """Wait once for the files whose validation the server deferred; a file that failed
        it is deleted (as a failed upload is) and its failure raised."""
        names = [dist.filename for dist in validating]
        self._reporter.step(f"waiting for the server to validate {', '.join(names)}")
        final = await self._client.wait_for_files(session, names)
        failed: list[tuple[str, dict[str, Any]]] = []
        completed = {}
        for dist in validating:
            entry = final.files.get(dist.filename) or {}
            if entry.get("status") == "completed":
                completed[dist.filename] = dist.sha256
            else:
                failed.append((dist.filename, entry))
                if entry.get("link"):
                    await self._client.discard_file(entry["link"])
        if completed:
            self._state.mark_completed(lid, completed)
        if failed:
            name, entry = failed[0]
            status = str(entry.get("status"))
            notices = [str(notice) for notice in entry.get("notices") or []]
            raise OperationFailed(f"{name} ended in {status!r}", status, notices)

    async def _upload_one(
        self, session: SessionView, dist: Distribution, transfer: Transfer
    ) -> str | None:
        """The file's status once sent and completed (``completed``, or ``processing`` while
        the server validates it); None when --skip-existing skips it."""
        try:
            return await self._upload_file(session, dist, transfer)
        except ProblemError as exc:
            if not (self._args.skip_existing and _already_on_index(exc)):
                raise
            self._reporter.info(f"{dist.filename}: already on the index; skipped")
            return None

    async def _upload_file(
        self, session: SessionView, dist: Distribution, transfer: Transfer
    ) -> str:
        file = await self._client.upload_file(
            session,
            dist.path,
            size=dist.size,
            hashes=dist.hashes,
            attestations=list(dist.attestations) or None,
            progress=transfer.track(dist),
            on_created=lambda file: self._reporter.step(
                f"uploading {dist.filename} ({dist.size} bytes, {file.mechanism_identifier})"
            ),
            on_resume=lambda name, offset: self._reporter.info(
                f"{name}: the connection dropped; resuming at byte {offset} "
                "(the server has everything before it)"
            ),
            wait=False,
        )
        self._reporter.step(f"{dist.filename}: {file.status}")
        return file.status


class Completions:
    """The files completed in a session, written to the state file (for --skip-existing) at
    most once a second and when the release's uploads end, however they end. One write per
    file would rewrite the whole file for each: quadratic in a release of hundreds of wheels.
    A client killed meanwhile forgets at most a second's completions; those files are sent
    again."""

    def __init__(self, state: StateFile, lid: str, every: float = 1.0) -> None:
        self._state = state
        self._lid = lid
        self._every = every
        self._pending: dict[str, str] = {}
        self._written = time.monotonic()

    def add(self, filename: str, sha256: str) -> None:
        self._pending[filename] = sha256
        if time.monotonic() - self._written >= self._every:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._state.mark_completed(self._lid, self._pending)
            self._pending = {}
        self._written = time.monotonic()

    def __enter__(self) -> Completions:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.flush()


async def _all_or_nothing(coroutines: list[Awaitable[None]]) -> None:
    """Run concurrently; the first failure (in order) cancels the rest and propagates."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure


def _already_on_index(exc: ProblemError) -> bool:
    # The file is published (or being published by another session): what twine's
    # --skip-existing skips.
    slug = exc.type.replace("/", ":").rsplit(":", 1)[-1]  # urn:...:slug or .../slug
    return exc.status == 409 and slug in (
        "already-published",
        "filename-reserved",
    )
