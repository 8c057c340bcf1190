"""The session state machine applied to a session record: its next state, or the problem
that explains to the caller why the event is not allowed now."""

from __future__ import annotations

from gateway.domain.errors import conflict, not_found
from gateway.domain.records import PublishingSession
from gateway.domain.states import (
    SessionEvent,
    SessionState,
    TransitionRefused,
    next_session_state,
)

# Events a publish under way refuses: it reads the files and the session as they are.
_REFUSED_WHILE_PUBLISHING = (
    SessionEvent.EDIT_FILES,
    SessionEvent.CANCEL,
    SessionEvent.PUBLISH_NOW,
    SessionEvent.PUBLISH_DEFERRED,
)


# A session in review is ``processing`` without a publish journal: these events then mean
# their review variants (the files stay editable; publish waits for the review's verdict).
_IN_REVIEW = {
    SessionEvent.EDIT_FILES: SessionEvent.EDIT_FILES_IN_REVIEW,
    SessionEvent.CANCEL: SessionEvent.CANCEL_IN_REVIEW,
}


def in_review(session: PublishingSession) -> bool:
    return session.status == SessionState.PROCESSING and session.publish is None


def next_state(session: PublishingSession, event: SessionEvent) -> SessionState:
    """The next state, or the problem that explains why the event is not allowed now."""
    if session.status == SessionState.CANCELED:
        raise not_found("session")
    if session.publish is not None and event in _REFUSED_WHILE_PUBLISHING:
        raise conflict(
            "publish-in-progress",
            "A publish of this session is under way: wait for it to resolve.",
            source="status",
        )
    if in_review(session):
        if event in (SessionEvent.PUBLISH_NOW, SessionEvent.PUBLISH_DEFERRED):
            raise conflict(
                "review-in-progress",
                "The release's files are being reviewed: publish once the review passed.",
                source="status",
            )
        event = _IN_REVIEW.get(event, event)
    try:
        return next_session_state(session.status, event)
    except TransitionRefused as exc:
        raise conflict(
            "invalid-session-state",
            f"The session is {session.status.value}: cannot {event.value}.",
            source="status",
        ) from exc


def require(session: PublishingSession, event: SessionEvent) -> None:
    """Check, without changing anything, that ``event`` is allowed on ``session`` now."""
    next_state(session, event)


def apply_review(session: PublishingSession, event: SessionEvent, notice: str | None) -> bool:
    """Move ``session`` as the review step says (``processing`` while a file is reviewed,
    then ``open``, or ``error`` with ``notice``); False when nothing changes: a session being
    published or ended, or already where the event leads, is left as it is."""
    if session.publish is not None:
        return False
    try:
        status = next_session_state(session.status, event)
    except TransitionRefused:
        return False
    fresh = notice is not None and notice not in session.notices
    if status == session.status and not fresh:
        return False
    session.status = status
    if fresh and notice is not None:
        session.notices.append(notice)
    return True
