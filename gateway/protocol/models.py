"""Pydantic models of every Upload 2.0 request and response body.

Requests are strict (a string where an integer belongs is a 400, not a coercion); unknown keys
are ignored and ``meta`` may carry index-specific ``_`` keys, as R-G2 asks.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    field_validator,
)
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from gateway.protocol.media import API_MAJOR, API_VERSION, api_major

SessionStatus = Literal["open", "processing", "published", "error", "canceled"]
FileStatus = Literal["pending", "processing", "completed", "error", "canceled"]
# A session lists its files but not the canceled ones.
ListedFileStatus = Literal["pending", "processing", "completed", "error"]

# md5 and sha1 are collision-broken: they may be declared, and are verified, but never suffice
# as the one secure hash PEP 694 requires (R-F3).
WEAK_HASHES = frozenset({"md5", "sha1"})


def _hashes_schema() -> dict[str, Any]:
    """What ``hashes`` accepts, for the OpenAPI document: every fixed-size algorithm of
    ``hashlib.algorithms_guaranteed`` with its digest length, at least one of them secure.
    The server also accepts the other ``hashlib.new()`` names; it checks every digest itself."""
    sizes = {
        name: hashlib.new(name).digest_size
        for name in sorted(hashlib.algorithms_guaranteed)
        if not name.startswith("shake_")
    }
    return {
        "minProperties": 1,
        "properties": {
            name: {"type": "string", "pattern": f"^[0-9a-fA-F]{{{2 * size}}}$"}
            for name, size in sizes.items()
        },
        "additionalProperties": False,
        "anyOf": [{"required": [name]} for name in sizes if name not in WEAK_HASHES],
    }


def _whole_number(value: object) -> object:
    """JSON Schema's ``integer`` (draft 2020-12, OpenAPI 3.1): ``1000`` or ``1000.0``, never
    ``"1000"``, ``true`` or ``1.5``. pydantic's strict int would refuse ``1000.0``, which
    generic JSON tools do send."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number")
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_whole_number)]


class Meta(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    api_version: StrictStr = Field(
        alias="api-version", json_schema_extra={"pattern": r"^2\.[0-9]+$"}
    )

    @field_validator("api_version")
    @classmethod
    def _major_matches_content_type(cls, value: str) -> str:
        major = api_major(value)
        if major is None:
            raise ValueError(f"api-version must look like '{API_VERSION}'")
        if major != API_MAJOR:
            raise ValueError(
                f"api-version {value} does not match the content type's major version {API_MAJOR}"
            )
        return value


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    meta: Meta


class SessionCreateRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"meta": {"api-version": "2.0"}, "name": "example-project", "version": "1.0"}
            ]
        }
    )

    # The patterns document what is accepted (and steer generated test data there); the
    # service checks names and versions itself, to answer with problems naming the field.
    name: StrictStr = Field(
        json_schema_extra={
            "pattern": "^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$",
            "maxLength": 200,
        }
    )
    version: StrictStr = Field(
        description="A PEP 440 version; the pattern shows the common public forms.",
        json_schema_extra={
            "pattern": r"^[0-9]+(\.[0-9]+)*((a|b|rc)[0-9]+)?(\.post[0-9]+)?(\.dev[0-9]+)?$",
            "maxLength": 100,
        },
    )


# Sdists allow any project-name spelling before the last "-"; wheels escape "-" as "_".
_SDIST = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?-[0-9][0-9A-Za-z.!+_]*\.tar\.gz"
_WHEEL = (
    r"[A-Za-z0-9]([A-Za-z0-9._]*[A-Za-z0-9])?-[0-9][0-9A-Za-z.!+_]*(-[0-9][A-Za-z0-9_.]*)?"
    r"-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+-[A-Za-z0-9_.]+\.whl"
)
_DISTRIBUTION_FILENAME = f"^({_SDIST}|{_WHEEL})$"


class FileCreateRequest(Request):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "meta": {"api-version": "2.0"},
                    "filename": "example_project-1.0-py3-none-any.whl",
                    "size": 1000,
                    "hashes": {"sha256": "0" * 64},
                    "mechanism": "http-post-bytes",
                }
            ]
        }
    )

    # As with names, the service checks these itself (R-F2..F4, F6) and names the field in its
    # problem; the schema facts describe what can succeed and steer generated requests there.
    filename: StrictStr = Field(
        description="A wheel or sdist filename of the session's release.",
        json_schema_extra={"pattern": _DISTRIBUTION_FILENAME, "maxLength": 255},
    )
    size: JsonInt = Field(json_schema_extra={"minimum": 1})
    hashes: dict[StrictStr, StrictStr] = Field(json_schema_extra=_hashes_schema())
    mechanism: StrictStr


class ExtendRequest(Request):
    extend_for: JsonInt = Field(alias="extend-for", ge=0)


class EmptyRequest(Request):
    """The body of publish and complete: only ``meta``."""


# Responses are what this server sends and what the client reads back (from this server or
# any other): the wire names are the aliases, and a key the PEP lets a server omit is optional
# (never null on the wire: the schema shows only its string form, with no default).


def _omitted_when_none(schema: JsonDict) -> None:
    schema.pop("default", None)


class _ResponsePart(BaseModel):
    model_config = ConfigDict(serialize_by_alias=True, populate_by_name=True)


class ResponseMeta(_ResponsePart):
    api_version: str = Field(API_VERSION, alias="api-version")


class Response(_ResponsePart):
    meta: ResponseMeta = ResponseMeta()


class SessionLinks(_ResponsePart):
    session: str
    upload: str
    publish: str
    extend: str | SkipJsonSchema[None] = Field(
        None, description="Absent: no extensions.", json_schema_extra=_omitted_when_none
    )
    stage: str | SkipJsonSchema[None] = Field(
        None, description="Absent: no staged preview.", json_schema_extra=_omitted_when_none
    )


class SessionFile(_ResponsePart):
    status: ListedFileStatus
    link: str
    notices: list[str] = Field(default_factory=list)


class GateApproval(_ResponsePart):
    principal: str
    at: str


class GateGap(_ResponsePart):
    source: str = Field(description='"approvals", or "files.{filename}"')
    message: str


class ReleaseGates(_ResponsePart):
    """The release gates of the project's policy (docs/policy.md): who approved the files as
    they are, and what is still missing before publish."""

    approvals_required: int = Field(alias="approvals-required")
    approved_by: list[GateApproval] = Field(default_factory=list, alias="approved-by")
    missing: list[GateGap] = Field(default_factory=list)


class SessionResponse(Response):
    links: SessionLinks
    mechanisms: list[str]
    session_token: str | SkipJsonSchema[None] = Field(
        None, alias="session-token", json_schema_extra=_omitted_when_none
    )
    expires_at: str = Field(alias="expires-at")
    status: SessionStatus
    files: dict[str, SessionFile]
    notices: list[str] = Field(default_factory=list)
    gates: ReleaseGates | SkipJsonSchema[None] = Field(
        None,
        description="On a session's status, when a release-gate policy covers its project.",
        json_schema_extra=_omitted_when_none,
    )


class FileLinks(_ResponsePart):
    file_upload_session: str = Field(alias="file-upload-session")
    complete: str
    extend: str | SkipJsonSchema[None] = Field(
        None, description="Absent: no extensions.", json_schema_extra=_omitted_when_none
    )


class MechanismDetails(_ResponsePart):
    # The mechanism's own keys (its URLs, part sizes ...) sit beside the identifier.
    model_config = ConfigDict(extra="allow")

    identifier: str


class FileResponse(Response):
    # Not in PEP 694 (clients follow ``links``): the ``{fid}`` of this file's URLs, so that
    # generated clients and OpenAPI links can address the file from the document alone.
    # Other servers don't send it, so the client reads it as optional.
    file_id: str | SkipJsonSchema[None] = Field(
        None, alias="file-id", json_schema_extra=_omitted_when_none
    )
    links: FileLinks
    status: FileStatus
    expires_at: str = Field(alias="expires-at")
    mechanism: MechanismDetails
    notices: list[str] = Field(default_factory=list)


def _base64(value: str) -> str:
    import base64
    import binascii

    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be base64") from None
    return value


class AttestationEnvelope(BaseModel):
    statement: StrictStr
    signature: StrictStr

    _statement_is_base64 = field_validator("statement", "signature")(_base64)


class VerificationMaterial(BaseModel):
    model_config = ConfigDict(extra="allow")

    certificate: StrictStr
    transparency_entries: list[dict[str, object]] = Field(min_length=1)

    _certificate_is_base64 = field_validator("certificate")(_base64)


class Attestation(BaseModel):
    """A PEP 740 attestation object, checked for shape (not for its signature)."""

    model_config = ConfigDict(extra="allow")

    version: Literal[1]
    verification_material: VerificationMaterial
    envelope: AttestationEnvelope
