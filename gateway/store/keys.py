"""The bucket layout: every key the gateway writes, in one place (relative to the prefix)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

from packaging.utils import canonicalize_version

SESSIONS = "sessions/"
LIVE = "live/"


def session(session_id: str) -> str:
    return f"sessions/{session_id}.json"


def session_data(session_id: str) -> str:
    """Everything that belongs to a session besides its status record and its summary
    entries."""
    return f"sessions/{session_id}/"


def session_listing(session_id: str) -> str:
    """The session record and its summary entries, found by one listing: no other key
    starts so (a session id has no dot, and its data is under ``session_data``)."""
    return f"sessions/{session_id}."


def file_records(session_id: str) -> str:
    return f"sessions/{session_id}/files/"


def file_upload(session_id: str, file_id: str) -> str:
    return f"sessions/{session_id}/files/{file_id}.json"


def file_data(session_id: str, file_id: str) -> str:
    return f"sessions/{session_id}/files/{file_id}/"


def file_bytes(session_id: str, file_id: str, attempt: str) -> str:
    # One object per attempt: racing POSTs never write the same key, the record says which won.
    return f"sessions/{session_id}/files/{file_id}/{attempt}.data"


def resumable_tail(session_id: str, file_id: str, token: str) -> str:
    """Received bytes of a resumable upload that do not fill a multipart part yet."""
    return f"sessions/{session_id}/files/{file_id}/tail-{token}"


def attestations(session_id: str, file_id: str) -> str:
    return f"sessions/{session_id}/files/{file_id}/attestations.json"


def core_metadata(session_id: str, file_id: str) -> str:
    return f"sessions/{session_id}/files/{file_id}/METADATA"


def file_summaries(session_id: str) -> str:
    """Beside the session record (not under its data), so that the listing of
    ``session_listing`` that finds the record finds them."""
    return f"sessions/{session_id}.shown/"


def older_file_summaries(session_id: str) -> str:
    """Where a gateway from before ``file_summaries`` wrote them (under ``session_data``, and
    purged with it): still read where they decide (a publish, the end of a session), since
    older replicas write there during a rolling upgrade."""
    return f"sessions/{session_id}/shown/"


def file_summaries_of(session_id: str, file_id: str) -> str:
    return f"{file_summaries(session_id)}{file_id}."


SummaryFields = tuple[str, int, int, str, int, str]


def file_summary(session_id: str, fields: SummaryFields) -> str:
    """One summary of a file, its fields in the key so that the status folds a listing
    without reading each (R-W9, R-W13): (file id, revision, creation time in microseconds,
    status, number of notices, filename). A file id has no dot; the filename comes last."""
    fid, revision, created_us, status, notices, filename = fields
    rest = f"{revision:06d}.{created_us}.{status}.{notices}.{filename}"
    return f"{file_summaries_of(session_id, fid)}{rest}"


def file_summary_fields(key: str) -> SummaryFields | None:
    """The fields of a :func:`file_summary` key, None for anything else."""
    folder, _, entry = key.rpartition("/")  # a filename has no slash
    if not folder.endswith((".shown", "/shown")):  # either layout
        return None
    parts = entry.split(".", 5)
    if len(parts) != 6 or not all(parts[1:5]):
        return None
    fid, revision, created_us, status, notices, filename = parts
    if not (revision.isdigit() and created_us.isdigit() and notices.isdigit()):
        return None
    return fid, int(revision), int(created_us), status, int(notices), filename


def file_claim(session_id: str, filename: str) -> str:
    """Which upload currently owns a filename in a session (one at a time, R-F7)."""
    return f"sessions/{session_id}/names/{filename}.json"


def filename_reservation(project: str, filename: str) -> str:
    """Held by the session whose publish reserved ``filename``; kept for good once the file
    reached the index (R-P8)."""
    return f"publishing/{project}/{filename}.json"


def filename_reservations(project: str, start: str = "") -> str:
    """Where the reservations of ``project``'s filenames beginning with ``start`` are listed."""
    return f"publishing/{project}/{start}"


def name_registration(project: str) -> str:
    """A project first published through the gateway, and by whom (R-P12)."""
    return f"names/{project}.json"


def live_release(name: str, version: str) -> str:
    """Points at the one non-terminal session of a release (R-P3).

    Keyed by the canonical version, so ``2.0`` and ``2.0.0`` (equal under PEP 440) collide.
    """
    return f"{LIVE}{name}/{canonicalize_version(version)}.json"


def open_sessions(principal: str) -> str:
    """Markers of the sessions a principal holds open, counted against its cap."""
    return f"principals/{quote(principal, safe='')}/open/"


def open_session(principal: str, session_id: str) -> str:
    return f"{open_sessions(principal)}{session_id}.json"


DUE = "due/"
SWEEP_LEASE = "sweep/lease.json"
DUE_INDEXED = "sweep/indexed.json"
_DUE_FORMAT = "%Y%m%d%H%M%S"


def due(when: datetime, session_id: str) -> str:
    """A session the sweep must visit at ``when`` (UTC): the keys sort by time, so a sweep
    lists only what is due, not every session kept (R-W9)."""
    return f"{DUE}{when.astimezone(UTC).strftime(_DUE_FORMAT)}/{session_id}"


def due_parts(key: str) -> tuple[datetime, str] | None:
    """(when, session id) of a ``due/`` key, None for anything else."""
    stamp, _, session_id = key[len(DUE) :].partition("/")
    try:
        when = datetime.strptime(stamp, _DUE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return when, session_id


def is_session_record(key: str) -> bool:
    return key.startswith(SESSIONS) and key.endswith(".json") and key.count("/") == 1


def session_id_of(key: str) -> str:
    return key[len(SESSIONS) : -len(".json")]


# The audit journal: append-only, one object per event, grouped by UTC day first so that
# retention deletes whole days found by listing a single level (docs/audit.md). Every event is
# written twice: under ``all/`` (the every-project view) and under its project (when it has one).
AUDIT = "audit/"


def audit_day(day: str) -> str:
    return f"audit/{day}/"


def audit_scope(day: str, project: str | None) -> str:
    """Where one view of one day lists its events: ``project`` None is every project."""
    return f"audit/{day}/all/" if project is None else f"audit/{day}/projects/{project}/"


def audit_event(day: str, project: str | None, event_id: str) -> str:
    return f"{audit_scope(day, project)}{event_id}.json"


def file_facts(sha256: str) -> str:
    """What the read path knows about one file's content (R-W10): never stale, never rewritten."""
    return f"files/{sha256}.json"


def yanks(project: str) -> str:
    """The releases of ``project`` yanked through the gateway (PEP 592, R-W10)."""
    return f"yanks/{project}.json"
