"""``publish`` against an index without Upload 2.0: each file of the release in one legacy
multipart POST (:mod:`gateway.client.legacy`), one after the other, as twine does."""

from __future__ import annotations

import aiohttp

from gateway.client.api import ClientError, ProblemError, RetryPolicy
from gateway.client.cli.output import Reporter
from gateway.client.cli.publish_report import Outcome
from gateway.client.credentials import RepositoryCredentials
from gateway.client.legacy import form_fields, upload_legacy
from gateway.client.local import Release


async def publish_legacy(
    release: Release,
    *,
    http: aiohttp.ClientSession,
    credentials: RepositoryCredentials,
    reporter: Reporter,
    retry: RetryPolicy,
    skip_existing: bool,
) -> Outcome:
    """Upload the release's files with the legacy API; the outcome says which went through."""
    outcome = Outcome(release, "legacy", "open")
    for dist in release.files:
        form_fields(dist)  # a file the form cannot carry fails before any byte moves
    try:
        with reporter.transfer(release.files) as transfer:
            for dist in release.files:
                reporter.step(f"uploading {dist.filename} ({dist.size} bytes, legacy)")
                try:
                    await upload_legacy(
                        http,
                        credentials.repository_url,
                        dist,
                        authorization=credentials.authorization,
                        progress=transfer.track(dist),
                        retry=retry,
                    )
                except ProblemError as exc:
                    if not (skip_existing and _legacy_already_there(exc)):
                        raise
                    reporter.info(f"{dist.filename}: already on the index; skipped")
                    outcome.skipped.add(dist.filename)
                    continue
                outcome.uploaded.add(dist.filename)
    except ClientError as exc:
        outcome.status = "failed"
        outcome.error = exc
        return outcome
    outcome.status = "published"
    return outcome


def _legacy_already_there(exc: ProblemError) -> bool:
    # What twine's --skip-existing recognises: 409, or a 400 whose reason says so (pypiserver,
    # older Warehouse).
    said = f"{exc.title} {exc.detail}".lower()
    return exc.status == 409 or (exc.status == 400 and "exist" in said)
