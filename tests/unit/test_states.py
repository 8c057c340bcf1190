"""Every row of PEP 694's two transition tables, and every transition they forbid."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.states import (
    FILE_TRANSITIONS,
    SESSION_TRANSITIONS,
    FileEvent,
    FileState,
    SessionEvent,
    SessionState,
    TransitionRefused,
    next_file_state,
    next_session_state,
)

S, SE = SessionState, SessionEvent
F, FE = FileState, FileEvent

# The PEP's publishing-session table, row by row (plus extension and expiry, which the PEP
# describes in prose).
PEP_SESSION_TABLE = [
    (S.OPEN, SE.EDIT_FILES, S.OPEN),
    (S.OPEN, SE.PUBLISH_NOW, S.PUBLISHED),
    (S.OPEN, SE.PUBLISH_DEFERRED, S.PROCESSING),
    (S.OPEN, SE.CANCEL, S.CANCELED),
    (S.ERROR, SE.CANCEL, S.CANCELED),
    (S.PROCESSING, SE.PUBLISH_SUCCEEDED, S.PUBLISHED),
    (S.PROCESSING, SE.PUBLISH_FAILED, S.ERROR),
    (S.ERROR, SE.EDIT_FILES, S.ERROR),
    (S.ERROR, SE.PUBLISH_NOW, S.PUBLISHED),  # "publish retried → processing or published"
    (S.ERROR, SE.PUBLISH_DEFERRED, S.PROCESSING),
    (S.OPEN, SE.EXTEND, S.OPEN),
    (S.ERROR, SE.EXTEND, S.ERROR),
    (S.PROCESSING, SE.EXTEND, S.PROCESSING),
    (S.OPEN, SE.EXPIRE, S.CANCELED),
    (S.ERROR, SE.EXPIRE, S.CANCELED),
    # The review step (R-W11; python/peps#5070 gives "processing" to automated review).
    (S.OPEN, SE.REVIEW_STARTED, S.PROCESSING),
    (S.ERROR, SE.REVIEW_STARTED, S.PROCESSING),
    (S.PROCESSING, SE.REVIEW_STARTED, S.PROCESSING),
    (S.PROCESSING, SE.REVIEW_PASSED, S.OPEN),
    (S.OPEN, SE.REVIEW_FAILED, S.ERROR),
    (S.ERROR, SE.REVIEW_FAILED, S.ERROR),
    (S.PROCESSING, SE.REVIEW_FAILED, S.ERROR),
    (S.PROCESSING, SE.EDIT_FILES_IN_REVIEW, S.PROCESSING),
    (S.PROCESSING, SE.CANCEL_IN_REVIEW, S.CANCELED),
]

PEP_FILE_TABLE = [
    (F.PENDING, FE.SEND_BYTES, F.PENDING),
    (F.PENDING, FE.ATTACH_ATTESTATIONS, F.PENDING),
    (F.PENDING, FE.COMPLETE_NOW, F.COMPLETED),
    (F.PENDING, FE.COMPLETE_DEFERRED, F.PROCESSING),
    (F.PENDING, FE.COMPLETE_FAILED, F.ERROR),
    (F.PENDING, FE.DELETE, F.CANCELED),
    (F.PROCESSING, FE.PROCESSING_SUCCEEDED, F.COMPLETED),
    (F.PROCESSING, FE.PROCESSING_FAILED, F.ERROR),
    (F.COMPLETED, FE.DELETE, F.CANCELED),
    (F.ERROR, FE.DELETE, F.CANCELED),
]


@pytest.mark.parametrize(("state", "event", "expected"), PEP_SESSION_TABLE)
def test_session_transition(state: S, event: SE, expected: S) -> None:
    assert next_session_state(state, event) == expected


@pytest.mark.parametrize(("state", "event", "expected"), PEP_FILE_TABLE)
def test_file_transition(state: F, event: FE, expected: F) -> None:
    assert next_file_state(state, event) == expected


def test_tables_allow_nothing_else() -> None:
    assert set(SESSION_TRANSITIONS) == {(s, e) for s, e, _ in PEP_SESSION_TABLE}
    assert set(FILE_TRANSITIONS) == {(s, e) for s, e, _ in PEP_FILE_TABLE}


FORBIDDEN_SESSION = sorted(
    set(itertools.product(S, SE)) - {(s, e) for s, e, _ in PEP_SESSION_TABLE}
)
FORBIDDEN_FILE = sorted(set(itertools.product(F, FE)) - {(s, e) for s, e, _ in PEP_FILE_TABLE})


@pytest.mark.parametrize(("state", "event"), FORBIDDEN_SESSION)
def test_forbidden_session_transition(state: S, event: SE) -> None:
    with pytest.raises(TransitionRefused):
        next_session_state(state, event)


@pytest.mark.parametrize(("state", "event"), FORBIDDEN_FILE)
def test_forbidden_file_transition(state: F, event: FE) -> None:
    with pytest.raises(TransitionRefused):
        next_file_state(state, event)


@pytest.mark.parametrize(
    ("state", "event"),
    [
        (S.PROCESSING, SE.CANCEL),  # R-P6: 409 while processing
        (S.PROCESSING, SE.EDIT_FILES),
        (S.PROCESSING, SE.PUBLISH_NOW),
        (S.PUBLISHED, SE.CANCEL),
        (S.CANCELED, SE.PUBLISH_NOW),
    ],
)
def test_notable_refusals(state: S, event: SE) -> None:
    with pytest.raises(TransitionRefused, match=state.value):
        next_session_state(state, event)


def test_file_delete_refused_while_processing() -> None:  # R-F12
    with pytest.raises(TransitionRefused):
        next_file_state(F.PROCESSING, FE.DELETE)


def test_terminal_states_have_no_way_out() -> None:
    assert not [key for key in SESSION_TRANSITIONS if key[0] in (S.PUBLISHED, S.CANCELED)]
    assert not [key for key in FILE_TRANSITIONS if key[0] == F.CANCELED]
