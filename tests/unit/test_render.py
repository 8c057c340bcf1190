"""The session document: its envelope through the protocol model, its files encoded as they
are (R-G3), and the same document the model itself would write."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

from gateway.api.render import session_body, session_document
from gateway.api.urls import Urls
from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState, SessionState
from gateway.protocol.models import SessionResponse

URLS = Urls("https://upload.example", "/upload/2.0/")


def session_with_files(count: int) -> PublishingSession:
    now = datetime.now(UTC)
    session = PublishingSession(
        id=secrets.token_urlsafe(32),
        name="example",
        version="1.0",
        status=SessionState.OPEN,
        created_at=now,
        expires_at=now + timedelta(days=7),
        created_by="config:alice",
        created_via="upload2",
        files={},
        notices=["Ünïcode notice"],
    )
    for number in range(count):
        upload = FileUpload(
            id=secrets.token_urlsafe(16),
            session_id=session.id,
            filename=f"example-1.0-{number}-py3-none-any.whl",
            size=1024,
            hashes={"sha256": "0" * 64},
            mechanism="http-post-bytes",
            status=FileState.ERROR if number % 2 else FileState.COMPLETED,
            created_at=now,
            notices=["bad metadata"] if number % 2 else [],
        )
        assert session.files is not None
        session.files[upload.id] = upload.summary()
    return session


def test_the_document_is_the_models_own_encoding() -> None:
    session = session_with_files(40)
    assert session.files is not None
    files = {summary.filename: summary for summary in session.files.values()}
    mechanisms = ["http-post-bytes"]
    document = session_document(session, files, URLS, mechanisms)
    # ``gates`` (R-W11) is an extension member, left out unless a policy covers the project.
    through_the_model = session_body(session, files, URLS, mechanisms).model_dump_json(
        by_alias=True, exclude={"gates"}
    )
    assert json.loads(document) == json.loads(through_the_model)
    parsed = SessionResponse.model_validate_json(document)
    assert len(parsed.files) == 40
    some = parsed.files["example-1.0-1-py3-none-any.whl"]
    assert some.status == "error"
    assert some.notices == ["bad metadata"]
    assert some.link.startswith(f"https://upload.example/upload/2.0/sessions/{session.id}/")
    assert "Ünïcode".encode() in document  # UTF-8, as pydantic writes it
