"""The operations the server may defer (``202``): a publish and a file's validation are
followed to their end through the transport's one polling loop, and an end other than
success is raised as :class:`OperationFailed` with the server's notices."""

from __future__ import annotations

import functools
from urllib.parse import urljoin

from gateway.client._errors import OperationFailed
from gateway.client._models import FileUploadView, SessionView
from gateway.client._transport import Answer, Transport, problem_type, retry_after

# How long a retried publish waits for an earlier attempt that holds it (R-W12): a lease,
# taken over by the sweep once it lapses.
PUBLISH_TAKEOVER_WAIT = 180.0


async def published_already(
    transport: Transport, answer: Answer, session: SessionView
) -> SessionView | None:
    """A publish refused with ``409`` because an earlier attempt, whose answer was lost,
    went through (R-W12): the session, then ``processing`` or ``published``, shows it."""
    if answer.status != 409:
        return None
    current = SessionView.read(await transport.request("GET", session.url), 200)
    if current.status == "open" and problem_type(answer).endswith("publish-in-progress"):
        # The earlier attempt holds the publish (its replica may have died holding the
        # lease): the session leaves `open` once it, or the replica taking it over, ends.
        transport.on_retry("publish: an earlier attempt is under way; waiting for it")
        current = await transport.poll(
            session.url,
            lambda polled: SessionView.read(polled, 200),
            lambda view: view.status == "open",
            first_delay=1.0,
            max_wait=PUBLISH_TAKEOVER_WAIT,
            waiting_for="the earlier publish attempt",
        )
    if current.status not in ("processing", "published"):
        return None
    transport.on_retry(f"publish: an earlier attempt went through; the session is {current.status}")
    return current


async def published(
    transport: Transport, url: str, first_delay: float | None, max_wait: float | None
) -> SessionView:
    """The session at ``url`` once its publish has ended, which must be in ``published``."""
    final = await session_settled(transport, url, first_delay, max_wait)
    if final.status != "published":
        raise OperationFailed(f"publishing ended in {final.status!r}", final.status, final.notices)
    return final


async def session_settled(
    transport: Transport, url: str, first_delay: float | None, max_wait: float | None
) -> SessionView:
    """The session at ``url`` once it has left ``processing``."""
    return await transport.poll(
        url,
        lambda answer: SessionView.read(answer, 200),
        _processing,
        first_delay=first_delay,
        max_wait=max_wait,
        waiting_for="the session to finish processing",
    )


async def files_validated(
    transport: Transport, session: SessionView, filenames: list[str], max_wait: float | None
) -> SessionView:
    """The session once none of ``filenames`` is ``processing`` any more."""
    return await transport.poll(
        session.url,
        lambda answer: SessionView.read(answer, 200),
        functools.partial(_validating, filenames),
        first_delay=None,
        max_wait=max_wait,
        waiting_for=f"the validation of {', '.join(filenames)}",
    )


async def completed(
    transport: Transport,
    answer: Answer,
    result: FileUploadView,
    file: FileUploadView,
    max_wait: float | None,
) -> FileUploadView:
    """The file whose completion the server deferred, once it has left ``processing``,
    which must be in ``completed``."""
    if result.status == "processing":
        result = await transport.poll(
            urljoin(answer.url, answer.headers.get("Location") or file.url),
            lambda poll: FileUploadView.read(poll, file.filename, 200),
            _processing,
            first_delay=retry_after(answer.headers) or 1.0,
            max_wait=max_wait,
            waiting_for=f"{file.filename} to be validated",
        )
    if result.status != "completed":
        raise OperationFailed(
            f"{file.filename or 'the file'} ended in {result.status!r}",
            result.status,
            result.notices,
        )
    return result


def _processing(view: SessionView | FileUploadView) -> bool:
    return view.status == "processing"


def _validating(filenames: list[str], view: SessionView) -> bool:
    return any(view.files.get(name, {}).get("status") == "processing" for name in filenames)
