"""Domain errors as problem documents: the one place that knows their HTTP status (R-G5)."""

from __future__ import annotations

from gateway.protocol.problems import ErrorItem, Problem
from gateway.sessions.errors import DomainError, Kind

STATUS = {
    Kind.INVALID: 400,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.CONFLICT: 409,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED: 422,
    Kind.TOO_MANY: 429,
    Kind.INDEX_REFUSED: 502,
    Kind.UNAVAILABLE: 503,
}


def problem_for(error: DomainError) -> Problem:
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if error.offset is not None:
        headers["Upload-Offset"] = str(error.offset)
    errors = [ErrorItem(pointer.source, pointer.message) for pointer in error.errors]
    return Problem(STATUS[error.kind], error.slug, error.detail, errors, headers=headers)
