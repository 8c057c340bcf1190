"""Publishing-session and file-upload-session state machines (PEP 694 transition tables).

Each machine is a table from (state, event) to the next state. Anything not in the table is
forbidden; the caller turns :class:`TransitionRefused` into a ``409 Conflict``.
"""

from __future__ import annotations

from enum import StrEnum


class SessionState(StrEnum):
    OPEN = "open"
    PROCESSING = "processing"
    PUBLISHED = "published"
    ERROR = "error"
    CANCELED = "canceled"


class SessionEvent(StrEnum):
    EDIT_FILES = "edit files"  # upload, replace or delete a file
    EXTEND = "extend"
    PUBLISH_NOW = "publish immediately"  # 201
    PUBLISH_DEFERRED = "accept publish for processing"  # 202
    PUBLISH_SUCCEEDED = "deferred publish succeeded"
    PUBLISH_FAILED = "deferred publish failed"
    CANCEL = "cancel"
    EXPIRE = "expire"
    # The review step (R-W11, python/peps#5070: "processing" covers automated review).
    REVIEW_STARTED = "start a review"
    REVIEW_PASSED = "every review passed"
    REVIEW_FAILED = "a review failed"
    # What a client may still do while its files are reviewed (not while they publish):
    # the transitions layer picks these for a session in review.
    EDIT_FILES_IN_REVIEW = "edit files during review"
    CANCEL_IN_REVIEW = "cancel during review"


class FileState(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELED = "canceled"


class FileEvent(StrEnum):
    SEND_BYTES = "send bytes"
    ATTACH_ATTESTATIONS = "attach attestations"
    COMPLETE_NOW = "complete immediately"  # 201
    COMPLETE_DEFERRED = "accept completion for processing"  # 202
    COMPLETE_FAILED = "completion failed"  # synchronous failure
    PROCESSING_SUCCEEDED = "deferred completion succeeded"
    PROCESSING_FAILED = "deferred completion failed"
    DELETE = "delete"


class TransitionRefused(Exception):
    def __init__(self, state: StrEnum, event: StrEnum) -> None:
        super().__init__(f"cannot {event.value} while {state.value}")
        self.state = state
        self.event = event


S, SE = SessionState, SessionEvent
_EDITABLE = (S.OPEN, S.ERROR)

SESSION_TRANSITIONS: dict[tuple[SessionState, SessionEvent], SessionState] = {
    **{(state, SE.EDIT_FILES): state for state in _EDITABLE},
    **{(state, SE.EXTEND): state for state in (*_EDITABLE, S.PROCESSING)},
    **{(state, SE.PUBLISH_NOW): S.PUBLISHED for state in _EDITABLE},
    **{(state, SE.PUBLISH_DEFERRED): S.PROCESSING for state in _EDITABLE},
    (S.PROCESSING, SE.PUBLISH_SUCCEEDED): S.PUBLISHED,
    (S.PROCESSING, SE.PUBLISH_FAILED): S.ERROR,
    **{(state, SE.CANCEL): S.CANCELED for state in _EDITABLE},
    # A publish in flight is never cut short by expiry: it resolves first.
    **{(state, SE.EXPIRE): S.CANCELED for state in _EDITABLE},
    # Review: "processing" while a completed file is reviewed, "error" when a review fails;
    # the files stay editable (a replaced file is reviewed again) and the session cancelable.
    **{(state, SE.REVIEW_STARTED): S.PROCESSING for state in (*_EDITABLE, S.PROCESSING)},
    (S.PROCESSING, SE.REVIEW_PASSED): S.OPEN,
    **{(state, SE.REVIEW_FAILED): S.ERROR for state in (*_EDITABLE, S.PROCESSING)},
    (S.PROCESSING, SE.EDIT_FILES_IN_REVIEW): S.PROCESSING,
    (S.PROCESSING, SE.CANCEL_IN_REVIEW): S.CANCELED,
}

F, FE = FileState, FileEvent

FILE_TRANSITIONS: dict[tuple[FileState, FileEvent], FileState] = {
    (F.PENDING, FE.SEND_BYTES): F.PENDING,
    (F.PENDING, FE.ATTACH_ATTESTATIONS): F.PENDING,
    (F.PENDING, FE.COMPLETE_NOW): F.COMPLETED,
    (F.PENDING, FE.COMPLETE_DEFERRED): F.PROCESSING,
    (F.PENDING, FE.COMPLETE_FAILED): F.ERROR,
    (F.PROCESSING, FE.PROCESSING_SUCCEEDED): F.COMPLETED,
    (F.PROCESSING, FE.PROCESSING_FAILED): F.ERROR,
    **{(state, FE.DELETE): F.CANCELED for state in (F.PENDING, F.COMPLETED, F.ERROR)},
}


def next_session_state(state: SessionState, event: SessionEvent) -> SessionState:
    try:
        return SESSION_TRANSITIONS[state, event]
    except KeyError:
        raise TransitionRefused(state, event) from None


def next_file_state(state: FileState, event: FileEvent) -> FileState:
    try:
        return FILE_TRANSITIONS[state, event]
    except KeyError:
        raise TransitionRefused(state, event) from None


def is_terminal(state: SessionState) -> bool:
    return state in (S.PUBLISHED, S.CANCELED)


def is_editable(state: SessionState) -> bool:
    return state in _EDITABLE
