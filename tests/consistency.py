"""The bucket consistency checker: walks every object the gateway wrote and reports each
record that is unreadable or references something that is not there.

It separates what must never happen from leftovers the gateway is built to tolerate and heal:
a live-release pointer or a quota marker outliving its session is taken over or dropped on
next use, and whatever an ended session still holds before it is ``settled`` is freed by the
next sweep. What it reports are states that would lose or block a release: a completed file
without its bytes, a reservation nobody will ever release, a file record without a session.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gateway.domain.records import FileUpload, PublishingSession
from gateway.domain.states import FileState, SessionState
from gateway.store.s3 import S3Client


@dataclass
class Bucket:
    objects: dict[str, int] = field(default_factory=dict)  # key (without prefix) -> size
    multipart: list[str] = field(default_factory=list)


async def _walk(client: S3Client, bucket: str, prefix: str) -> Bucket:
    found = Bucket()
    async for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            found.objects[item["Key"][len(prefix) :]] = item["Size"]
    async for page in client.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, Prefix=prefix
    ):
        found.multipart += [upload["Key"][len(prefix) :] for upload in page.get("Uploads", [])]
    return found


async def _json(client: S3Client, bucket: str, key: str) -> Any:
    response = await client.get_object(Bucket=bucket, Key=key)
    async with response["Body"] as body:
        return json.loads(await body.read())


async def _digest(client: S3Client, bucket: str, key: str) -> str:
    response = await client.get_object(Bucket=bucket, Key=key)
    sha256 = hashlib.sha256()
    async with response["Body"] as body:
        while chunk := await body.read(1 << 20):
            sha256.update(chunk)
    return sha256.hexdigest()


async def check_bucket(client: S3Client, bucket: str, prefix: str) -> list[str]:
    """Every violation found under ``prefix``; an empty list means consistent."""
    found = await _walk(client, bucket, prefix)
    problems: list[str] = []
    sessions: dict[str, PublishingSession] = {}
    files: dict[tuple[str, str], FileUpload] = {}

    async def load(key: str) -> Any:
        try:
            return await _json(client, bucket, prefix + key)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{key}: not JSON ({exc})")
            return None

    for key in sorted(found.objects):
        parts = key.split("/")
        if parts[0] == "sessions" and len(parts) == 2 and key.endswith(".json"):
            data = await load(key)
            try:
                session = PublishingSession.model_validate(data)
            except ValidationError as exc:
                problems.append(f"{key}: invalid session record ({exc.error_count()} errors)")
                continue
            if session.id != parts[1].removesuffix(".json"):
                problems.append(f"{key}: holds session {session.id}")
            sessions[session.id] = session
        elif parts[0] == "sessions" and len(parts) == 4 and parts[2] == "files":
            if not key.endswith(".json"):
                continue
            data = await load(key)
            try:
                upload = FileUpload.model_validate(data)
            except ValidationError as exc:
                problems.append(f"{key}: invalid file record ({exc.error_count()} errors)")
                continue
            files[(parts[1], parts[3].removesuffix(".json"))] = upload

    for (sid, fid), upload in files.items():
        where = f"sessions/{sid}/files/{fid}.json"
        if upload.session_id != sid or upload.id != fid:
            problems.append(f"{where}: names {upload.session_id}/{upload.id}")
        if sid not in sessions:
            problems.append(f"{where}: its session record is missing")
        if upload.status == FileState.CANCELED:
            continue  # deleted: its bytes are purged, its record stays for the status page
        if upload.committed is not None:
            data_key = f"sessions/{sid}/files/{fid}/{upload.committed.attempt}.data"
            if found.objects.get(data_key) != upload.committed.size:
                problems.append(
                    f"{where}: committed {upload.committed.size} bytes, stored "
                    f"{found.objects.get(data_key)}"
                )
            elif upload.status == FileState.COMPLETED:
                digest = await _digest(client, bucket, prefix + data_key)
                if digest != upload.hashes.get("sha256", digest):
                    problems.append(f"{where}: completed, but its bytes have sha256 {digest}")
        elif upload.status == FileState.COMPLETED:
            problems.append(f"{where}: completed without committed bytes")

    indexed = "sweep/indexed.json" in found.objects
    due = {key.rsplit("/", 1)[1] for key in found.objects if key.startswith("due/")}
    for sid, session in sessions.items():
        # A session written since the due index exists always has an entry (it is written
        # before the record and replaced before it is dropped), or no sweep would ever see it.
        if (indexed or session.files is not None) and sid not in due:
            problems.append(f"sessions/{sid}.json: no due/ entry, never swept")
        for fid, summary in (session.files or {}).items():
            # The summary follows its file record (written after it): it may lag, never lead.
            upload = files.get((sid, fid))
            if upload is not None and upload.revision < summary.revision:
                problems.append(f"sessions/{sid}.json: summary of {fid} ahead of its record")
    for sid, session in sessions.items():
        if session.publish is not None:
            names = {u.filename for (s, _), u in files.items() if s == sid}
            unknown = set(session.publish.confirmed) - names
            if unknown:
                problems.append(f"sessions/{sid}.json: journal confirms unknown files {unknown}")

    for key in found.objects:
        parts = key.split("/")
        # A session's summary entries are beside its record (sessions/{sid}.shown/), or under
        # its data where an older gateway wrote them (sessions/{sid}/shown/).
        owner = parts[1].removesuffix(".shown") if len(parts) > 1 else ""
        if parts[0] == "sessions" and len(parts) >= 3 and owner not in sessions:
            if not key.endswith(".json") or parts[2] != "files" or len(parts) != 4:
                problems.append(f"{key}: belongs to no session")
        elif parts[0] == "sessions" and len(parts) == 4 and parts[2] == "names":
            data = await load(key)
            if data is not None and (parts[1], data.get("file_id")) not in files:
                problems.append(f"{key}: claims a file that does not exist")
        elif parts[0] == "publishing":
            data = await load(key)
            if data is not None and _leaked_reservation(data, key, sessions):
                problems.append(f"{key}: reserved for a session that ended without publishing")
        elif parts[0] == "names":
            data = await load(key)
            if data is None or data.get("state") != "reserved":
                continue
            holder = sessions.get(data.get("session", ""))
            if holder is None or holder.settled:
                problems.append(f"{key}: reserved by a session that has ended")

    for key in found.multipart:
        parts = key.split("/")
        holder = sessions.get(parts[1]) if len(parts) > 1 else None
        if holder is None or holder.settled:
            problems.append(f"{key}: an unfinished multipart upload nobody will complete")
    return problems


def _leaked_reservation(data: Any, key: str, sessions: dict[str, PublishingSession]) -> bool:
    """A filename reservation nobody will ever release although its file never reached the
    index (R-P8).

    A reservation names only its holding session; whether the file was published is told by
    that session (``published``) or by the index. Fine: a record written as "published" (by
    an older gateway), a holder that is published, one not settled yet (its publish is under
    way, or the sweep frees what it held next), and a settled one that notes the file as
    put, or maybe put, on the index by a publish that failed (``maybe_on_index``).

    This checker has no view of the index, so a reservation whose holder is gone (sessions
    are purged once their retention is over) is accepted: it is most often a published
    session's, and only the index could tell it from a leak. That leaves the checker able to
    fail on a real leak: a session is settled (and what it held released) before its record
    is purged, so a reservation left by a canceled or failed session whose file never
    reached the index shows up here, with its holder settled and not published, for the
    whole retention (a week by default, ten minutes at least in the integration tests; the
    chaos run's 20 seconds let such a leak go unseen once its holder is purged)."""
    if data.get("state") == "published":
        return False
    holder = sessions.get(data.get("session_id", ""))
    if holder is None or not holder.settled or holder.status == SessionState.PUBLISHED:
        return False
    filename = key.split("/")[-1].removesuffix(".json")
    return filename not in holder.maybe_on_index
