"""pypiserver: PEP 503 HTML only, sha256 in each link's fragment.

It redirects a non-normalized name to the normalized one (same origin, followed) and an
unknown project to its fallback index, pypi.org by default: that redirect means "not here"
and is not followed, so pypi.org's files are never mistaken for the backend's.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.publish.backends.base import Backend, Document, IndexFile, Listing, project_path
from gateway.publish.backends.warehouse import parse_release_files, parse_simple_html

__all__ = ["PypiserverBackend"]


class PypiserverBackend(Backend):
    kind: ClassVar[str] = "pypiserver"
    foreign_redirect_is_unknown: ClassVar[bool] = True

    def listing_url(self, project: str) -> str:
        return f"{self.simple_url}{project_path(project)}/"

    async def published_files(self, project: str) -> Listing:
        document = await self.fetch(self.listing_url(project), accept="text/html")
        if document is None:
            return {}
        return self.parse(document, _parse_html)

    async def release_files(self, project: str) -> list[IndexFile]:
        document = await self.fetch(self.listing_url(project), accept="text/html")
        return [] if document is None else self.parse(document, parse_release_files)


def _parse_html(document: Document) -> Listing:
    return parse_simple_html(document.text())
