"""Failures as problem documents: the one place that knows their HTTP status (R-G5)."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from gateway.backend_errors import BackendRefused, BackendUnavailable
from gateway.domain.errors import DomainError, Kind
from gateway.logs import log
from gateway.protocol.problems import ErrorItem, Problem, retry_soon
from gateway.store.record_store import UpdateContention

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


def failure_problem(failure: Exception) -> Problem:
    """The problem document for any failure a handler raises (aiohttp's own HTTP exceptions
    aside). The gateway's own failures are logged here; the caller's are not."""
    match failure:
        case Problem():
            return failure
        case DomainError():
            return problem_for(failure)
        case BackendUnavailable():
            log.warning("backend.unavailable", error=str(failure))
            return _passing(
                "backend-unavailable", "The backing index is not answering; retry shortly."
            )
        case BackendRefused():
            log.error("backend.refused", error=str(failure))
            return Problem(
                502, "backend-refused", "The backing index refused the gateway's credentials."
            )
        case UpdateContention():
            return _passing("contention", "Too many concurrent updates; retry.")
        case ClientError() | BotoCoreError() | OSError():
            log.error("storage.unavailable", error=repr(failure))
            return _passing(
                "storage-unavailable", "The staging store is not answering; retry shortly."
            )
    # Called inside the handler's ``except``, so the traceback is logged with it.
    log.exception("request.failed")
    return Problem(500, "internal-error", "An unexpected error occurred; it has been logged.")


def _passing(slug: str, detail: str) -> Problem:
    """A 503 that goes away by itself (a dependency down, contention)."""
    return Problem(503, slug, detail, headers=retry_soon())
