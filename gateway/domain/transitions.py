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
