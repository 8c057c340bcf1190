"""The index's listing as a publish run reads it: once at the start (patiently: the index
may be restarting), and once at the end to confirm every file is there with its sha256."""

from __future__ import annotations

import asyncio

from gateway.domain.errors import Kind
from gateway.domain.records import FileUpload
from gateway.publish.backends.base import Backend, BackendUnavailable, Listing
from gateway.publish.failure import PublishFailed, backoff, sha256
from gateway.settings import PublishSettings


class IndexListings:
    def __init__(self, backend: Backend, settings: PublishSettings):
        self._backend = backend
        self._settings = settings

    async def patiently(self, project: str) -> Listing:
        retries = self._settings.retries
        for attempt_number in range(retries + 1):
            try:
                return await self._backend.published_files(project)
            except BackendUnavailable as exc:
                if attempt_number == retries:
                    raise PublishFailed(
                        Kind.UNAVAILABLE,
                        "backend-unavailable",
                        f"The backend is not answering: {exc}",
                    ) from None
                await asyncio.sleep(backoff(attempt_number))
        raise AssertionError("unreachable")

    async def now(self, project: str) -> Listing | None:
        """The listing, asked once; None when the index did not give it."""
        try:
            return await self._backend.published_files(project)
        except Exception:  # whatever the reason, the caller then assumes the worst
            return None

    async def confirm(self, project: str, ordered: list[FileUpload]) -> None:
        """Every file is on the index with its sha256, by the index's own listing."""
        listing = await self._backend.published_files(project)
        missing = {
            u.filename: "not listed by the index with the expected sha256 after upload"
            for u in ordered
            if u.filename not in listing or listing[u.filename] not in (None, sha256(u))
        }
        if missing:
            raise PublishFailed(
                Kind.INDEX_REFUSED,
                "publish-unconfirmed",
                "The index did not confirm every file.",
                missing,
            )
