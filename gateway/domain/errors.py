"""Domain errors: why a use case refused, in the domain's words. The API layer maps each
kind to an HTTP status and renders the problem document (``gateway.api.errors``), so the
services stay independent of HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from gateway.distribution.errors import RuleBroken


class Kind(Enum):
    INVALID = "invalid"  # the request is malformed or inconsistent
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    CONFLICT = "conflict"  # not possible in the current state
    TOO_LARGE = "too-large"
    UNSUPPORTED = "unsupported"
    TOO_MANY = "too-many"  # a quota is used up
    INDEX_REFUSED = "index-refused"  # the backing index said no (credentials, contents)
    UNAVAILABLE = "unavailable"  # try again shortly: contention, a dependency down


@dataclass
class Pointer:
    """Which part of the request an error is about, and what is wrong with it."""

    source: str
    message: str


@dataclass
class DomainError(Exception):
    kind: Kind
    slug: str
    detail: str
    errors: list[Pointer] = field(default_factory=list)
    retry_after: int | None = None  # seconds after which the same request may succeed
    offset: int | None = None  # a resumable upload's durable offset, to resume from
    # The id of the existing resource a conflict is about, when the caller may use it
    # instead (a retried create whose first answer was lost: the API answers its Location).
    existing: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.detail)


def invalid(slug: str, detail: str, source: str = "body") -> DomainError:
    return DomainError(Kind.INVALID, slug, detail, [Pointer(source, detail)])


@contextlib.contextmanager
def refused_as_invalid() -> Iterator[None]:
    """A packaging rule's refusal (``gateway.distribution``) as the domain's ``invalid``."""
    try:
        yield
    except RuleBroken as exc:
        raise invalid(exc.slug, exc.detail, exc.source) from None


def conflict(slug: str, detail: str, source: str = "body") -> DomainError:
    return DomainError(Kind.CONFLICT, slug, detail, [Pointer(source, detail)])


def not_found(what: str = "resource") -> DomainError:
    return DomainError(
        Kind.NOT_FOUND, "not-found", f"No such {what}.", [Pointer("url", f"unknown {what}")]
    )


def contention(detail: str) -> DomainError:
    return DomainError(Kind.UNAVAILABLE, "contention", detail)
