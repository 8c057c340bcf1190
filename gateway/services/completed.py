"""What follows a file's completion besides its own record (the release gates' review and
auto-publish, R-W11): told by :class:`gateway.services.files.FileService` once a file has
completed, from the layer above without the file service knowing it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gateway.domain.records import FileUpload, PublishingSession


class CompletedFiles(Protocol):
    async def file_completed(self, session: PublishingSession, upload: FileUpload) -> None: ...


class FollowUps:
    """Several follow-ups, told in order."""

    def __init__(self, followers: Sequence[CompletedFiles] = ()):
        self._followers = list(followers)

    async def file_completed(self, session: PublishingSession, upload: FileUpload) -> None:
        for follower in self._followers:
            await follower.file_completed(session, upload)


NO_FOLLOW_UP = FollowUps()
