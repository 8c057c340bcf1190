"""The OpenAPI 3.1 document of the gateway's HTTP surface, generated from the wire models.

Every schema comes from the pydantic models the handlers use, and every path from the route
table the application serves (``protocol/routes.py``), so the document cannot drift from them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from gateway.protocol import models
from gateway.protocol.audit import AuditPage, AuditQuery
from gateway.protocol.media import OCTET_STREAM, PARTIAL_UPLOAD, PROBLEM_JSON, UPLOAD_V2_JSON
from gateway.protocol.routes import ROUTES, Route
from gateway.protocol.yanks import YankRequest, YankState

_REQUESTS: list[type[BaseModel]] = [
    models.SessionCreateRequest,
    models.FileCreateRequest,
    models.ExtendRequest,
    models.EmptyRequest,
    YankRequest,
]
_RESPONSES: list[type[BaseModel]] = [
    models.SessionResponse,
    models.FileResponse,
    AuditPage,
    YankState,
]

_PROBLEM = {
    "type": "object",
    "required": ["type", "status", "title", "detail"],
    "properties": {
        "type": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "title": {"type": "string"},
        "detail": {"type": "string"},
        "meta": {"type": "object", "properties": {"api-version": {"type": "string"}}},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["source", "message"],
                "properties": {"source": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


# The path parameters as the document names them (the route table's are short): a client
# generator makes them its argument names, and stateful testers read them as "the id of a
# session/file", which tells them a walk cannot start at a file operation with a made-up id.
PARAMETER_NAMES = {"sid": "session_id", "fid": "file_id"}


def document_path(route: Route, api_root: str) -> str:
    """The route's path template as the document writes it."""
    path = route.path(api_root)
    for name, documented in PARAMETER_NAMES.items():
        path = path.replace(f"{{{name}}}", f"{{{documented}}}")
    return path


# OpenAPI links: how a generic client (or a stateful tester such as schemathesis) walks the API
# from the document alone. Every session URL is built from the session-token (it is the
# {session_id} segment, and the stage token); every file URL from the {session_id} it was
# created under and the response's ``file-id``.
_SESSION = "$response.body#/session-token"
_SESSION_FROM_PATH = {"session_id": "$request.path.session_id"}
_FILE_FROM_BODY = {**_SESSION_FROM_PATH, "file_id": "$response.body#/file-id"}
_FILE_FROM_PATH = {**_SESSION_FROM_PATH, "file_id": "$request.path.file_id"}
_SESSION_OPERATIONS = (
    "getSession",
    "extendSession",
    "publishSession",
    "cancelSession",
    "approveSession",
)
_FILE_OPERATIONS = (
    "getFile",
    "sendBytes",
    "resumableOffset",
    "resumableAppend",
    "attachAttestations",
    "completeFile",
    "extendFile",
    "deleteFile",
)


def _to(operations: tuple[str, ...], parameters: dict[str, str]) -> dict[str, Any]:
    return {op: {"operationId": op, "parameters": parameters} for op in operations}


def _create_file(mechanism: str) -> dict[str, Any]:
    # The create request names the release: an sdist filename that can be accepted there.
    return {
        "operationId": "createFile",
        "parameters": {"session_id": _SESSION},
        "requestBody": {
            "filename": "{$request.body#/name}-{$request.body#/version}.tar.gz",
            "mechanism": mechanism,
        },
    }


def _session_links(mechanisms: Sequence[str]) -> dict[str, Any]:
    """From a new (or the existing) session: what can be done with it, a file upload session
    per mechanism offered (each a different way to send the bytes), and its stage."""
    return (
        _to(_SESSION_OPERATIONS, {"session_id": _SESSION})
        | {
            "createFile" if index == 0 else f"createFile-{mechanism}": _create_file(mechanism)
            for index, mechanism in enumerate(mechanisms)
        }
        | {
            "stageRoot": {"operationId": "stageRoot", "parameters": {"token": _SESSION}},
            "stagePreview": {"operationId": "stagePreview", "parameters": {"token": _SESSION}},
            "stageProject": {
                "operationId": "stageProject",
                "parameters": {"token": _SESSION, "project": "$request.body#/name"},
            },
            "getReleaseSession": {
                "operationId": "getReleaseSession",
                "parameters": {
                    "project": "$request.body#/name",
                    "version": "$request.body#/version",
                },
            },
        }
    )


# Only producers and reads carry links: a stateful tester starts walks at a POST that has
# links, and a walk started at a made-up {session_id}/{file_id} only ever meets 404s. Within a
# walk every earlier answer stays usable, so ``createFile``'s links also reach complete after
# content. Keys: (source operationId, status); the session's depend on the mechanisms offered.
def _links(mechanisms: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
    staged_file = {
        "operationId": "stageFile",
        "parameters": {"token": "$request.path.session_id", "filename": "$request.body#/filename"},
    }
    return {
        ("createSession", "201"): _session_links(mechanisms),
        # The release already has a session: the problem names it, and the walk goes on there.
        ("createSession", "409"): _session_links(mechanisms),
        ("createFile", "202"): _to(_FILE_OPERATIONS, _FILE_FROM_BODY) | {"stageFile": staged_file},
        # A file's status (a read: no walk starts there) leads to everything done with the file.
        ("getFile", "200"): _to(_FILE_OPERATIONS, _FILE_FROM_PATH),
    }


def _add_links(paths: dict[str, Any], mechanisms: Sequence[str]) -> None:
    links_by_answer = _links(mechanisms)
    for item in paths.values():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for status, answer in operation["responses"].items():
                links = links_by_answer.get((operation["operationId"], status))
                if links:
                    answer["links"] = links


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {UPLOAD_V2_JSON: {"schema": _ref(schema_name)}}}


def _answer(description: str, schema_name: str | None = None, **headers: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description}
    if schema_name:
        answer["content"] = {UPLOAD_V2_JSON: {"schema": _ref(schema_name)}}
    if headers:
        answer["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return answer


_ERRORS = {
    "default": {
        "description": "Every error: an RFC 9457 problem document.",
        "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
    }
}


def _operation(
    operation_id: str,
    summary: str,
    responses: dict[str, Any],
    body: dict[str, Any] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "responses": {**responses, **_ERRORS},
    }
    if body:
        operation["requestBody"] = body
    if not secured:
        operation["security"] = []
    return operation


def _progress(description: str) -> dict[str, Any]:
    header = {"schema": {"type": "string"}}
    return {
        "description": description,
        "headers": {"Upload-Offset": header, "Upload-Complete": header},
    }


def _path_parameters(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in names
    ]


def _simple_page() -> dict[str, Any]:
    return {
        "200": {
            "description": "PEP 503 HTML or PEP 691 JSON, by Accept",
            "content": {
                "application/vnd.pypi.simple.v1+json": {"schema": {"type": "object"}},
                "application/vnd.pypi.simple.v1+html": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    }


# What the document says of each operation; its path and method come from the route table.
def _schema(name: str) -> dict[str, Any]:
    return {"schema": _ref(name)}


def _yank_state(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": _schema("YankState")}}


def _audit_operation() -> dict[str, Any]:
    """The audit journal's reader (docs/audit.md); plain JSON, not an Upload 2.0 document."""
    operation = _operation(
        "readAudit",
        "Audit events, newest first (principals with the audit permission)",
        {"200": {"description": "A page", "content": {"application/json": _schema("AuditPage")}}},
    )
    properties = AuditQuery.model_json_schema()["properties"]
    operation["parameters"] = [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in properties.items()
    ]
    return operation


_OPERATIONS: dict[str, dict[str, Any]] = {
    operation["operationId"]: operation
    for operation in [
        _operation(
            "createSession",
            "Create a publishing session",
            {
                "201": _answer("Created", "SessionResponse", Location="links.session"),
                "409": {
                    "description": "The release has a live session: its URL in Location, "
                    "its session-token in the problem (or another conflict, without them)",
                    "content": {PROBLEM_JSON: {"schema": _ref("ExistingSessionProblem")}},
                },
            },
            _json_body("SessionCreateRequest"),
        ),
        _operation("getSession", "Session status", {"200": _answer("OK", "SessionResponse")}),
        _operation("cancelSession", "Cancel the session", {"204": _answer("Canceled")}),
        _operation(
            "extendSession",
            "Extend the session",
            {"200": _answer("OK", "SessionResponse")},
            _json_body("ExtendRequest"),
        ),
        _operation(
            "publishSession",
            "Publish onto the backing index",
            {
                "201": _answer("Published", "SessionResponse", Location="links.session"),
                "202": _answer("Processing", "SessionResponse", Location="links.session"),
            },
            _json_body("EmptyRequest"),
        ),
        _operation(
            "approveSession",
            "Approve the release's current files (release gates, docs/policy.md)",
            {
                "200": {
                    "description": "Who approved the files as they are, and how many must",
                    "content": {"application/vnd.pypi.upload.v2+json": {"schema": {}}},
                }
            },
            _json_body("EmptyRequest"),
        ),
        _operation(
            "getReleaseSession",
            "The live session of a release, by name and version (release gates: an approver "
            "finds what it approves)",
            {"200": _answer("OK", "SessionResponse"), "404": _answer("No live session")},
        ),
        _operation(
            "createFile",
            "Start a file upload session",
            {"202": _answer("Accepted", "FileResponse", Location="file upload session")},
            _json_body("FileCreateRequest"),
        ),
        _operation("getFile", "File upload status", {"200": _answer("OK", "FileResponse")}),
        _operation("deleteFile", "Delete or cancel the file", {"204": _answer("Deleted")}),
        _operation(
            "completeFile",
            "Complete (validate) the file",
            {
                "201": _answer("Completed", "FileResponse"),
                "202": _answer("Processing", "FileResponse"),
            },
            _json_body("EmptyRequest"),
        ),
        _operation(
            "extendFile",
            "Extend (the session of) the file",
            {"200": _answer("OK", "FileResponse")},
            _json_body("ExtendRequest"),
        ),
        _operation(
            "sendBytes",
            "http-post-bytes: the body is the file",
            {"200": _answer("Received", "FileResponse")},
            {
                "required": True,
                "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
            },
        ),
        _operation(
            "resumableOffset",
            "vnd-uploadgateway-resumable-v1: the durable offset (Upload-Offset)",
            {"204": _progress("Offset")},
        ),
        {
            **_operation(
                "resumableAppend",
                "vnd-uploadgateway-resumable-v1: append at Upload-Offset",
                {"204": _progress("Appended")},
                {
                    "required": True,
                    # The draft's media type; octet-stream too, which generic tools can send.
                    "content": {
                        media: {"schema": {"type": "string", "format": "binary"}}
                        for media in (PARTIAL_UPLOAD, OCTET_STREAM)
                    },
                },
            ),
            "parameters": [
                {
                    "name": "Upload-Offset",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "pattern": "^[0-9]{1,19}$"},
                },
                {
                    "name": "Upload-Complete",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "enum": ["?0", "?1"]},
                },
            ],
        },
        _operation(
            "attachAttestations",
            "PEP 740 attestations for the file",
            {"200": _answer("Stored", "FileResponse")},
            {
                "required": True,
                "content": {"application/json": {"schema": _ref("Attestations")}},
            },
        ),
        _operation("stageRoot", "Staged preview: simple index root", _simple_page(), secured=False),
        _operation(
            "stageProject",
            "Staged preview: project page",
            {**_simple_page(), "301": {"description": "To the normalized name"}},
            secured=False,
        ),
        _operation(
            "stageFile",
            "Staged preview: file bytes (or <file>.metadata)",
            {
                "200": {
                    "description": "The bytes",
                    "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
                },
                "206": {
                    "description": "A range",
                    "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
                },
                "302": {"description": "To a presigned S3 URL (when configured)"},
                "304": {"description": "Not modified"},
            },
            secured=False,
        ),
        _operation(
            "stagePreview",
            "Staged preview: the release as a page for people (docs/preview.md)",
            {
                "200": {
                    "description": "Server-rendered HTML, no script",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
            secured=False,
        ),
        _operation(
            "getProvenance",
            "PEP 740 provenance of a file published through the gateway (docs/policy.md)",
            {
                "200": {
                    "description": "Warehouse's Provenance object",
                    "content": {"application/vnd.pypi.integrity.v1+json": {"schema": {}}},
                }
            },
            secured=False,
        ),
        _operation("healthz", "Liveness", {"200": {"description": "Alive"}}, secured=False),
        _operation("readyz", "Readiness", {"200": {"description": "Ready"}}, secured=False),
        _operation(
            "metrics", "Prometheus metrics", {"200": {"description": "Metrics"}}, secured=False
        ),
        _operation(
            "openapi", "This document", {"200": {"description": "OpenAPI 3.1"}}, secured=False
        ),
        _audit_operation(),
        _operation(
            "yankRelease",
            "Yank a release the index holds (PEP 592; principals with the yank permission)",
            {
                "200": {
                    "description": "Yanked",
                    "content": {"application/json": _schema("YankState")},
                }
            },
            {"required": False, "content": {"application/json": _schema("YankRequest")}},
        ),
        _operation(
            "unyankRelease",
            "Unyank a release (principals with the yank permission)",
            {
                "200": {
                    "description": "Unyanked",
                    "content": {"application/json": _schema("YankState")},
                }
            },
        ),
    ]
}


def _schemas(mechanisms: Sequence[str] | None, max_file_size: int | None) -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in _REQUESTS]
        + [(model, "serialization") for model in _RESPONSES],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["Problem"] = _PROBLEM
    schemas["ExistingSessionProblem"] = {
        "allOf": [_ref("Problem")],
        "properties": {"session-token": {"type": "string"}},
    }
    schemas["Attestations"] = TypeAdapter(list[models.Attestation]).json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schemas.update(schemas["Attestations"].pop("$defs", {}))
    file_request = schemas["FileCreateRequest"]["properties"]
    if mechanisms:
        file_request["mechanism"]["enum"] = list(mechanisms)
    if max_file_size:
        file_request["size"]["maximum"] = max_file_size
    return schemas


def build(
    public_base_url: str,
    api_root: str,
    mechanisms: Sequence[str] | None = None,
    max_file_size: int | None = None,
) -> dict[str, Any]:
    """The document; ``mechanisms`` and ``max_file_size`` (this server's configuration) narrow
    ``FileCreateRequest`` to what can be accepted here."""
    facts = copy.deepcopy(_OPERATIONS)  # links are added to the answers below
    paths: dict[str, Any] = {}
    for route in ROUTES:
        item = paths.setdefault(document_path(route, api_root), {})
        if route.parameters:
            item["parameters"] = _path_parameters(
                *(PARAMETER_NAMES.get(name, name) for name in route.parameters)
            )
        item[route.method.lower()] = facts[route.operation_id]
    _add_links(paths, mechanisms or ["http-post-bytes"])  # the one every server offers
    schemas = _schemas(mechanisms, max_file_size)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "upload-gateway",
            "version": "0.1.0",
            "description": "PEP 694 (Upload 2.0) in front of a legacy Python package index.",
        },
        "servers": [{"url": public_base_url}],
        "security": [{"basic": []}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basic": {"type": "http", "scheme": "basic"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }
