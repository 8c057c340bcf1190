"""RFC 9457 problem documents (R-G5): one exception type, rendered by one middleware."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from gateway.protocol.media import API_VERSION

# Problem types are documented in docs/api.md under "Problem types".
PROBLEM_TYPE_BASE = "urn:upload-gateway:problem:"


@dataclass
class ErrorItem:
    source: str
    message: str


def retry_soon() -> dict[str, str]:
    """Headers for a failure that goes away by itself (a dependency down, contention)."""
    return {"Retry-After": "2"}


@dataclass
class Problem(Exception):
    """An error answered to the client as ``application/problem+json``.

    ``slug`` names the problem type (documented in docs/api.md); ``errors`` points at the
    offending parts of the request, one item each.
    """

    status: int
    slug: str
    detail: str
    errors: list[ErrorItem] = field(default_factory=list)
    headers: Mapping[str, str] = field(default_factory=dict)
    title: str | None = None
    # RFC 9457 extension members beyond ``meta`` and ``errors`` (e.g. the existing session's
    # ``session-token`` on a 409, so a client can follow it without parsing ``Location``).
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def document(self) -> dict[str, Any]:
        document = problem_document(
            self.status, self.slug, self.detail, self.errors, title=self.title
        )
        return {**document, **self.extensions}


def problem_document(
    status: int,
    slug: str,
    detail: str,
    errors: list[ErrorItem] | None = None,
    *,
    title: str | None = None,
) -> dict[str, Any]:
    return {
        "type": PROBLEM_TYPE_BASE + slug if slug != "about:blank" else "about:blank",
        "status": status,
        "title": title or HTTPStatus(status).phrase,
        "detail": detail,
        "meta": {"api-version": API_VERSION},
        "errors": [{"source": e.source, "message": e.message} for e in (errors or [])],
    }


def bad_request(slug: str, detail: str, source: str = "body") -> Problem:
    return Problem(400, slug, detail, [ErrorItem(source, detail)])


def conflict(slug: str, detail: str, source: str = "body", **kwargs: Any) -> Problem:
    return Problem(409, slug, detail, [ErrorItem(source, detail)], **kwargs)


def not_found(what: str = "resource") -> Problem:
    return Problem(404, "not-found", f"No such {what}.", [ErrorItem("url", f"unknown {what}")])
