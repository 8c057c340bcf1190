"""The projects that a publish through this replica started on lately (R-W10).

A publish onto the index takes seconds to minutes, so for a while after one starts, the read
path asks the index for its project's page on every request, whatever ``proxy.page_max_age``
says. The publish path opens a project's window; the read path's pages look at it. Both are
given the one instance at construction (``wiring.wire``)."""

from __future__ import annotations

import time

from gateway.distribution.filenames import project_of

# How long after a publish through this replica starts its project's page is always
# revalidated: a publish onto the index takes seconds to minutes.
PUBLISH_WINDOW_SECONDS = 600.0
# Windows kept per replica, as many as the read path keeps pages.
MAX_WINDOWS = 2048


class PublishWindows:
    def __init__(self, seconds: float = PUBLISH_WINDOW_SECONDS) -> None:
        self._seconds = seconds
        self._until: dict[str, float] = {}  # project -> until when (time.monotonic)

    def opened(self, filename: str) -> None:
        """A file of this project is being published through the gateway."""
        project = project_of(filename)
        if project is None:
            return
        now = time.monotonic()
        if len(self._until) >= MAX_WINDOWS:  # bounded: forget the windows that are over
            self._until = {p: t for p, t in self._until.items() if t > now}
        self._until[project] = now + self._seconds

    def is_open(self, project: str) -> bool:
        return self._until.get(project, 0.0) > time.monotonic()
