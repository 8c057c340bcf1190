"""The OpenAPI 3.1 document of the gateway's HTTP surface, generated from the wire models.

Every schema comes from the pydantic models the handlers use, so the document cannot drift
from them; a test checks that every route the application serves is described here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from gateway.protocol import models
from gateway.protocol.audit import AuditPage, AuditQuery
from gateway.protocol.media import OCTET_STREAM, PARTIAL_UPLOAD, PROBLEM_JSON, UPLOAD_V2_JSON

_REQUESTS: list[type[BaseModel]] = [
    models.SessionCreateRequest,
    models.FileCreateRequest,
    models.ExtendRequest,
    models.EmptyRequest,
]
_RESPONSES: list[type[BaseModel]] = [models.SessionResponse, models.FileResponse, AuditPage]

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


def build(public_base_url: str, api_root: str) -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in _REQUESTS]
        + [(model, "serialization") for model in _RESPONSES],
        by_alias=True,
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    schemas["Problem"] = _PROBLEM
    schemas["Attestations"] = TypeAdapter(list[models.Attestation]).json_schema(
        ref_template="#/components/schemas/{model}"
    )
    schemas.update(schemas["Attestations"].pop("$defs", {}))

    session = f"{api_root}sessions/{{sid}}"
    file = f"{session}/files/{{fid}}"
    sid, fid = _path_parameters("sid"), _path_parameters("sid", "fid")
    paths: dict[str, Any] = {
        api_root: {
            "post": _operation(
                "createSession",
                "Create a publishing session",
                {
                    "201": {
                        **_answer("Created", "SessionResponse", Location="links.session"),
                        # For clients and stateful testers: every session URL is derived from
                        # the session-token (it is the {sid} segment, and the stage token).
                        "links": {
                            operation: {
                                "operationId": operation,
                                "parameters": {"sid": "$response.body#/session-token"},
                            }
                            for operation in (
                                "getSession",
                                "cancelSession",
                                "extendSession",
                                "publishSession",
                                "createFile",
                            )
                        }
                        | {
                            "stageRoot": {
                                "operationId": "stageRoot",
                                "parameters": {"token": "$response.body#/session-token"},
                            }
                        },
                    },
                    "409": {
                        "description": "The release has a live session (see Location)",
                        "content": {PROBLEM_JSON: {"schema": _ref("Problem")}},
                    },
                },
                _json_body("SessionCreateRequest"),
            )
        },
        session: {
            "parameters": sid,
            "get": _operation(
                "getSession", "Session status", {"200": _answer("OK", "SessionResponse")}
            ),
            "delete": _operation(
                "cancelSession", "Cancel the session", {"204": _answer("Canceled")}
            ),
        },
        f"{session}/extend": {
            "parameters": sid,
            "post": _operation(
                "extendSession",
                "Extend the session",
                {"200": _answer("OK", "SessionResponse")},
                _json_body("ExtendRequest"),
            ),
        },
        f"{session}/publish": {
            "parameters": sid,
            "post": _operation(
                "publishSession",
                "Publish onto the backing index",
                {
                    "201": _answer("Published", "SessionResponse", Location="links.session"),
                    "202": _answer("Processing", "SessionResponse", Location="links.session"),
                },
                _json_body("EmptyRequest"),
            ),
        },
        f"{session}/files": {
            "parameters": sid,
            "post": _operation(
                "createFile",
                "Start a file upload session",
                {"202": _answer("Accepted", "FileResponse", Location="file upload session")},
                _json_body("FileCreateRequest"),
            ),
        },
        file: {
            "parameters": fid,
            "get": _operation(
                "getFile", "File upload status", {"200": _answer("OK", "FileResponse")}
            ),
            "delete": _operation(
                "deleteFile", "Delete or cancel the file", {"204": _answer("Deleted")}
            ),
        },
        f"{file}/complete": {
            "parameters": fid,
            "post": _operation(
                "completeFile",
                "Complete (validate) the file",
                {
                    "201": _answer("Completed", "FileResponse"),
                    "202": _answer("Processing", "FileResponse"),
                },
                _json_body("EmptyRequest"),
            ),
        },
        f"{file}/extend": {
            "parameters": fid,
            "post": _operation(
                "extendFile",
                "Extend (the session of) the file",
                {"200": _answer("OK", "FileResponse")},
                _json_body("ExtendRequest"),
            ),
        },
        f"{file}/content": {
            "parameters": fid,
            "post": _operation(
                "sendBytes",
                "http-post-bytes: the body is the file",
                {"200": _answer("Received", "FileResponse")},
                {
                    "required": True,
                    "content": {OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}},
                },
            ),
        },
        f"{file}/resumable": {
            "parameters": fid,
            "head": _operation(
                "resumableOffset",
                "vnd-uploadgateway-resumable-v1: the durable offset (Upload-Offset)",
                {"204": _progress("Offset")},
            ),
            "patch": {
                **_operation(
                    "resumableAppend",
                    "vnd-uploadgateway-resumable-v1: append at Upload-Offset",
                    {"204": _progress("Appended")},
                    {
                        "required": True,
                        "content": {
                            PARTIAL_UPLOAD: {"schema": {"type": "string", "format": "binary"}}
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
        },
        f"{file}/attestations": {
            "parameters": fid,
            "post": _operation(
                "attachAttestations",
                "PEP 740 attestations for the file",
                {"200": _answer("Stored", "FileResponse")},
                {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("Attestations")}},
                },
            ),
        },
        "/stage/{token}/": {
            "parameters": _path_parameters("token"),
            "get": _operation(
                "stageRoot", "Staged preview: simple index root", _simple_page(), secured=False
            ),
        },
        "/stage/{token}/{project}/": {
            "parameters": _path_parameters("token", "project"),
            "get": _operation(
                "stageProject",
                "Staged preview: project page",
                {**_simple_page(), "301": {"description": "To the normalized name"}},
                secured=False,
            ),
        },
        "/stage/{token}/+files/{filename}": {
            "parameters": _path_parameters("token", "filename"),
            "get": _operation(
                "stageFile",
                "Staged preview: file bytes (or <file>.metadata)",
                {
                    "200": {
                        "description": "The bytes",
                        "content": {
                            OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "206": {
                        "description": "A range",
                        "content": {
                            OCTET_STREAM: {"schema": {"type": "string", "format": "binary"}}
                        },
                    },
                    "302": {"description": "To a presigned S3 URL (when configured)"},
                    "304": {"description": "Not modified"},
                },
                secured=False,
            ),
        },
        "/healthz": {
            "get": _operation(
                "healthz", "Liveness", {"200": {"description": "Alive"}}, secured=False
            )
        },
        "/readyz": {
            "get": _operation(
                "readyz", "Readiness", {"200": {"description": "Ready"}}, secured=False
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics", "Prometheus metrics", {"200": {"description": "Metrics"}}, secured=False
            )
        },
        f"{api_root}openapi.json": {
            "get": _operation(
                "openapi", "This document", {"200": {"description": "OpenAPI 3.1"}}, secured=False
            )
        },
        f"{api_root}audit": {"get": _audit_operation()},
    }
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


def _schema(name: str) -> dict[str, Any]:
    return {"schema": _ref(name)}


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
