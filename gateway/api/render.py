"""Response bodies (R-G3): built from records, links always absolute."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

from aiohttp import web
from pydantic import BaseModel

from gateway.api.urls import Urls
from gateway.domain import clock
from gateway.domain.records import FileSummary, FileUpload, PublishingSession
from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, S3_PRESIGNED
from gateway.mechanisms.presigned import PartUrl
from gateway.protocol import models
from gateway.protocol.media import UPLOAD_V2_JSON


def upload_json(
    body: BaseModel, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=body.model_dump_json(by_alias=True).encode(),
        content_type=UPLOAD_V2_JSON,
        headers=headers,
    )


def session_body(
    session: PublishingSession,
    files: Mapping[str, FileSummary | FileUpload],
    urls: Urls,
    mechanisms: list[str],
) -> models.SessionResponse:
    return models.SessionResponse(
        links=models.SessionLinks(
            session=urls.session(session.id),
            upload=urls.upload(session.id),
            publish=urls.publish(session.id),
            extend=urls.extend(session.id),
            stage=urls.stage(session.id),
        ),
        mechanisms=mechanisms,
        session_token=session.id,
        expires_at=clock.rfc3339(session.expires_at),
        status=session.status.value,
        files=_listed(session.id, files, urls),
        notices=session.notices,
    )


def session_document(
    session: PublishingSession,
    files: Mapping[str, FileSummary | FileUpload],
    urls: Urls,
    mechanisms: list[str],
    gates: models.ReleaseGates | None = None,
) -> bytes:
    """:func:`session_body`, encoded. The envelope goes through the protocol model; the
    ``files`` mapping, built from records validated when they were read, is encoded as it
    is: validating it again cost more than the rest of a 400-file session's status.
    ``gates``: what the release gates say, on a status (absent otherwise)."""
    envelope = session_body(session, {}, urls, mechanisms).model_dump(mode="json", by_alias=True)
    envelope["files"] = _listed(session.id, files, urls)
    envelope.pop("gates", None)
    if gates is not None:
        envelope["gates"] = gates.model_dump(mode="json", by_alias=True)
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def _listed(
    sid: str, files: Mapping[str, FileSummary | FileUpload], urls: Urls
) -> dict[str, models.SessionFile]:
    """The ``files`` mapping. Plain dicts, validated once with the answer rather than a model
    per file: a 400-file session's answer is built in half the time."""
    head, _, tail = urls.file(sid, _FILE_ID).partition(_FILE_ID)
    listed = {
        # The listing never holds a canceled file (SessionFiles leaves them out).
        filename: {
            "status": upload.status.value,
            "link": head + upload.id + tail,
            "notices": upload.notices,
        }
        for filename, upload in files.items()
    }
    return cast(dict[str, models.SessionFile], listed)


_FILE_ID = "\x00file\x00"  # a stand-in no file id can contain, replaced in the URL template


def file_body(
    upload: FileUpload,
    session: PublishingSession,
    urls: Urls,
    parts: list[PartUrl] | None = None,
    presign_seconds: int = 0,
) -> models.FileResponse:
    sid, fid = session.id, upload.id
    attestations_url = urls.file_attestations(sid, fid)
    if upload.mechanism == HTTP_POST_BYTES:
        mechanism = models.MechanismDetails(
            identifier=upload.mechanism,
            file_url=urls.file_content(sid, fid),
            attestations_url=attestations_url,
        )
    elif upload.mechanism == RESUMABLE:
        mechanism = models.MechanismDetails(
            identifier=upload.mechanism,
            upload_url=urls.file_resumable(sid, fid),
            attestations_url=attestations_url,
        )
    elif upload.mechanism == S3_PRESIGNED:
        mechanism = _presigned_details(upload, session, urls, parts, presign_seconds)
    else:
        mechanism = models.MechanismDetails(identifier=upload.mechanism)
    return models.FileResponse(
        file_id=fid,
        links=models.FileLinks(
            file_upload_session=urls.file(sid, fid),
            complete=urls.file_complete(sid, fid),
            extend=urls.file_extend(sid, fid),
        ),
        status=upload.status.value,
        # A file upload lives exactly as long as its publishing session.
        expires_at=clock.rfc3339(session.expires_at),
        mechanism=mechanism,
        notices=upload.notices,
    )


def _presigned_details(
    upload: FileUpload,
    session: PublishingSession,
    urls: Urls,
    parts: list[PartUrl] | None,
    presign_seconds: int,
) -> models.MechanismDetails:
    """Part URLs only while the upload is pending (afterwards they are of no use). Every read
    of the file upload session signs them afresh, so ``parts_url`` is that session's URL."""
    assert upload.presigned is not None
    sid, fid = session.id, upload.id
    return models.MechanismDetails(
        identifier=upload.mechanism,
        part_size=upload.presigned.part_size,
        parts=[{"number": part.number, "url": part.url} for part in parts or []],
        parts_expire_in=presign_seconds if parts else 0,
        parts_url=urls.file(sid, fid),
        attestations_url=urls.file_attestations(sid, fid),
    )
