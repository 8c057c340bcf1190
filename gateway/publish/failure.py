"""Why a publish stopped, and the rules a publish checks before and after touching the index."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.domain.errors import DomainError, Kind, Pointer
from gateway.domain.records import FileUpload
from gateway.domain.states import FileState
from gateway.publish.backends.base import Listing

# Seconds after which a publish refused because the index was not answering may be retried.
RETRY_AFTER = 2


@dataclass
class PublishFailed(Exception):
    """Why a publish stopped; ``files`` maps a filename to the part of the reason about it."""

    kind: Kind
    slug: str
    reason: str
    files: dict[str, str] = field(default_factory=dict)
    # The file being posted may have reached the index all the same: its last post got no
    # answer (its reservation then stays, R-P8).
    maybe_landed: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.reason)

    def error(self) -> DomainError:
        errors = [Pointer(f"files.{name}", text) for name, text in self.files.items()]
        # Unavailable: the index was not answering, so asking again later is the remedy.
        retry_after = RETRY_AFTER if self.kind is Kind.UNAVAILABLE else None
        return DomainError(
            self.kind,
            self.slug,
            self.reason,
            errors or [Pointer("session", self.reason)],
            retry_after=retry_after,
        )


def sha256(upload: FileUpload) -> str:
    assert upload.committed is not None
    return upload.committed.digests["sha256"]


def publish_order(uploads: list[FileUpload]) -> list[FileUpload]:
    """Wheels first, the sdist last (R-W3): installers never see a source-only release that
    later gains wheels mid-publish."""
    return sorted(uploads, key=lambda u: (is_sdist(u), u.filename))


def is_sdist(upload: FileUpload) -> bool:
    return upload.filename.endswith(".tar.gz")


def require_completed(uploads: list[FileUpload]) -> None:
    offending = {u.filename: u.status.value for u in uploads if u.status != FileState.COMPLETED}
    if offending:
        raise DomainError(
            Kind.CONFLICT,
            "files-not-completed",
            "Every file must be completed before publishing: "
            + ", ".join(f"{name} is {state}" for name, state in offending.items()),
            [Pointer(f"files.{name}", state) for name, state in offending.items()],
        )


def check_conflicts(uploads: list[FileUpload], listing: Listing) -> None:
    """A filename already on the index with other bytes can never be published (R-P9)."""
    conflicting = {
        u.filename: "already on the index with another sha256"
        for u in uploads
        if u.filename in listing and listing[u.filename] not in (None, sha256(u))
    }
    if conflicting:
        raise PublishFailed(
            Kind.CONFLICT,
            "filename-conflict",
            "Already published with other contents: " + ", ".join(conflicting),
            conflicting,
        )


def backoff(attempt_number: int) -> float:
    return min(0.5 * 2.0**attempt_number, 10.0)
