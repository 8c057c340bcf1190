"""Local session ids: a small JSON file mapping each id to its server session.

PEP 694 suggests the id printed by ``publish --stage`` be local to the client and mapped to
the in-progress server session. The file lives at
``$XDG_STATE_HOME/upload-gateway/sessions.json`` (``~/.local/state/...`` by default;
``UPLOAD_GATEWAY_STATE_FILE`` or ``--state-file`` override it). It holds session URLs, which
carry the session token, so it is written with mode 0600. It also remembers how the session
was reached — repository URL, username, where the password came from, the TLS files — so that
``session ...`` commands work without repeating them; never a password. Writers take an
exclusive lock and replace the file atomically, so concurrent commands never corrupt it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["SessionRecord", "StateError", "StateFile", "default_state_file", "local_id"]

_FORMAT = 1
# Ended sessions are forgotten after this long; open ones are kept until they end.
_KEEP_ENDED = timedelta(days=30)
_ENDED = {"published", "canceled"}


class StateError(Exception):
    """An unknown or ambiguous local session id, or an unreadable state file."""


def default_state_file(env: Mapping[str, str]) -> Path:
    if override := env.get("UPLOAD_GATEWAY_STATE_FILE"):
        return Path(override).expanduser()
    base = env.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(base) / "upload-gateway" / "sessions.json"


def local_id(session_url: str) -> str:
    """A short id derived from the session URL, so the same session always gets the same id."""
    return hashlib.sha256(session_url.encode()).hexdigest()[:8]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class SessionRecord:
    id: str
    session_url: str
    repository_url: str
    name: str
    version: str
    stage_url: str | None = None
    status: str = "open"
    files: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    updated_at: str = field(default_factory=_now)
    username: str | None = None
    password_source: str | None = None  # "keyring", "TWINE_PASSWORD", "command line"...
    cert: str | None = None  # --cert: the CA bundle the server is verified with
    client_cert: str | None = None  # --client-cert
    completed: dict[str, str] = field(default_factory=dict)  # filename -> sha256 we completed

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SessionRecord:
        known = {key: data[key] for key in cls.__dataclass_fields__ if key in data}
        return cls(**known)


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> dict[str, SessionRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"{self.path}: {exc.strerror or exc}") from None
        try:
            document = json.loads(text)
            sessions = document["sessions"]
            return {key: SessionRecord.from_dict(value) for key, value in sessions.items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"{self.path}: not a session state file ({exc})") from None

    def get(self, reference: str) -> SessionRecord:
        """The record for a local id, a unique prefix of one, or a session URL."""
        records = self.records()
        if reference in records:
            return records[reference]
        by_url = [record for record in records.values() if record.session_url == reference]
        if by_url:
            return by_url[0]
        matches = [record for key, record in records.items() if key.startswith(reference)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise StateError(f"session id {reference!r} is ambiguous")
        raise StateError(f"no session {reference!r} in {self.path}")

    def save(self, record: SessionRecord) -> SessionRecord:
        record.updated_at = _now()
        with self._locked() as records:
            records[record.id] = record
        return record

    def update(self, session_id: str, **changes: Any) -> None:
        with self._locked() as records:
            record = records.get(session_id)
            if record is None:
                return
            for key, value in changes.items():
                setattr(record, key, value)
            record.updated_at = _now()

    def mark_completed(self, session_id: str, files: Mapping[str, str]) -> None:
        """Remember that this client completed ``files`` (filename -> sha256 of the bytes)
        in the session."""
        with self._locked() as records:
            record = records.get(session_id)
            if record is not None:
                record.completed.update(files)
                record.updated_at = _now()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, SessionRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_name(self.path.name + ".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                records = self.records()
                yield records
                self._write(_prune(records))
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def _write(self, records: dict[str, SessionRecord]) -> None:
        document = {
            "format": _FORMAT,
            "sessions": {key: asdict(record) for key, record in sorted(records.items())},
        }
        descriptor, temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=".sessions-", suffix=".json"
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                json.dump(document, handle, indent=2)
                handle.write("\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


def _prune(records: dict[str, SessionRecord]) -> dict[str, SessionRecord]:
    cutoff = datetime.now(UTC) - _KEEP_ENDED
    kept = {}
    for key, record in records.items():
        try:
            updated = datetime.strptime(record.updated_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            updated = datetime.now(UTC)
        if record.status in _ENDED and updated < cutoff:
            continue
        kept[key] = record
    return kept
