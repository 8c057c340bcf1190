"""The OpenAPI document describes every Upload 2.0 route the application serves."""

from __future__ import annotations

import re

from gateway.app import create_app
from gateway.protocol.openapi import build
from gateway.settings import load_settings

# Not Upload 2.0: the legacy pass-through and staging URL have the legacy protocol's own (form)
# contract.
UNDOCUMENTED = {"/legacy/", "/legacy/+stage/"}


def test_every_route_is_documented() -> None:
    settings = load_settings(
        None,
        s3={"bucket": "b"},
        backend={"upload_url": "http://index/", "simple_url": "http://index/simple/"},
    )
    app = create_app(settings, run_sweeper=False)
    served = {
        route.resource.canonical
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    document = build(settings.server.public_base_url, settings.server.api_root)
    # The document gives path parameters longer names ({sid} is {session_id} there).
    assert {_shape(path) for path in served - UNDOCUMENTED} == {
        _shape(path) for path in document["paths"]
    }


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def test_path_parameters_are_named_for_what_they_identify() -> None:
    """A walk cannot start at a file operation with a made-up id: the names say whose id it is,
    and the links fill them from the session-token and the file-id."""
    document = build("https://h", "/upload/2.0/")
    file_path = document["paths"]["/upload/2.0/sessions/{session_id}/files/{file_id}"]
    assert [p["name"] for p in file_path["parameters"]] == ["session_id", "file_id"]
    created = document["paths"]["/upload/2.0/sessions/{session_id}/files"]["post"]
    links = created["responses"]["202"]["links"]
    assert links["getFile"]["parameters"] == {
        "session_id": "$request.path.session_id",
        "file_id": "$response.body#/file-id",
    }


def test_operations_have_unique_ids_and_error_documents() -> None:
    document = build("https://h", "/upload/2.0/")
    ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    ]
    assert len(ids) == len(set(ids))
    for item in document["paths"].values():
        for method, operation in item.items():
            if method != "parameters":
                assert "application/problem+json" in operation["responses"]["default"]["content"]
