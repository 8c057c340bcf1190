"""The audit journal's documents: one event per action, and the pages the reader answers with.

Shared by the gateway (which writes and serves them) and the client CLI (which prints them).
An event never carries a secret: no password, token, session token or Authorization header.
"""

from __future__ import annotations

from datetime import UTC, datetime

from packaging.utils import InvalidName, canonicalize_name
from pydantic import BaseModel, ConfigDict, Field, field_validator

# What happened (the ``action`` field). Plain strings, so that an older client can print the
# events of a newer gateway.
SESSION_CREATED = "session.created"
SESSION_EXTENDED = "session.extended"
SESSION_CANCELED = "session.canceled"
SESSION_EXPIRED = "session.expired"
SESSION_PUBLISHED = "session.published"
PUBLISH_FAILED = "session.publish-failed"
FILE_COMPLETED = "file.completed"
FILE_FAILED = "file.failed"
LEGACY_PASSED_THROUGH = "legacy.passed-through"
LEGACY_STAGED = "legacy.staged"
NAME_REGISTERED = "name.registered"
AUTHENTICATION_REFUSED = "auth.refused"
PERMISSION_REFUSED = "permission.refused"

# How it ended (the ``outcome`` field).
OK = "ok"
REFUSED = "refused"
FAILED = "failed"


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")


class AuditFile(_Document):
    filename: str
    sha256: str | None = None


class AuditPrincipal(_Document):
    """Who acted. ``kind``: config, oidc, backend (pass-through), gateway (the gateway itself,
    e.g. expiring a session). For OIDC, ``issuer`` and the claims the trust policies look at."""

    id: str
    name: str
    kind: str
    issuer: str | None = None
    claims: dict[str, str] = Field(default_factory=dict)


class AuditEvent(_Document):
    id: str = Field(description="Time-sortable within its day; unique.")
    time: datetime
    action: str
    outcome: str
    project: str | None = None
    version: str | None = None
    files: list[AuditFile] = Field(default_factory=list)
    principal: AuditPrincipal | None = None
    client_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    session: str | None = Field(
        None, description="The first 8 characters of the session id (the full id is a secret)."
    )
    detail: str | None = None


class AuditPage(_Document):
    """``GET {api root}audit``: events newest first; ``next`` continues with older ones."""

    events: list[AuditEvent]
    next: str | None = Field(None, description="Cursor for the next page; absent on the last.")


class AuditQuery(_Document):
    """The reader's query parameters (``GET {api root}audit?...``)."""

    model_config = ConfigDict(extra="forbid")

    project: str | None = None
    since: datetime | None = Field(
        None, description="A date (2026-11-01, midnight UTC) or an RFC 3339 time."
    )
    cursor: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}/\d{11}-[0-9a-f]{8}$")
    limit: int = Field(100, ge=1, le=1000)

    @field_validator("project")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return canonicalize_name(value, validate=True)
        except InvalidName:
            raise ValueError("not a valid project name") from None

    @field_validator("since", mode="before")
    @classmethod
    def _date_or_time(cls, value: object) -> object:
        if isinstance(value, str) and len(value) == 10:
            value += "T00:00:00Z"  # a bare date is the start of that day, UTC
        return value

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
