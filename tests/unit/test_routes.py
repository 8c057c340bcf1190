"""The one route table (issue #16): aiohttp routes, URLs and OpenAPI paths all come from it."""

from __future__ import annotations

from gateway.api.urls import Urls
from gateway.app import HANDLERS
from gateway.protocol.openapi import PARAMETER_NAMES, build, document_path
from gateway.protocol.routes import BY_NAME, ROUTES


def test_every_route_has_a_handler_and_one_name() -> None:
    assert set(HANDLERS) == set(BY_NAME)
    assert len(BY_NAME) == len(ROUTES)
    assert len({route.operation_id for route in ROUTES}) == len(ROUTES)


def test_urls_follow_the_table_under_the_configured_root() -> None:  # R-G1
    urls = Urls("https://up.example", "/pypi/upload/")
    session = "https://up.example/pypi/upload/sessions/S"
    assert urls.root == "https://up.example/pypi/upload/"
    assert urls.session("S") == session
    assert urls.upload("S") == session + "/files"
    assert urls.publish("S") == session + "/publish"
    assert urls.extend("S") == session + "/extend"
    assert urls.stage("S") == "https://up.example/stage/S/"
    assert urls.file("S", "F") == session + "/files/F"
    assert urls.file_complete("S", "F") == session + "/files/F/complete"
    assert urls.file_extend("S", "F") == session + "/files/F/extend"
    assert urls.file_content("S", "F") == session + "/files/F/content"
    assert urls.file_attestations("S", "F") == session + "/files/F/attestations"
    assert urls.file_resumable("S", "F") == session + "/files/F/resumable"


def test_document_paths_are_the_table_paths() -> None:
    document = build("https://h", "/pypi/upload/")
    documented = {
        (method.upper(), path, operation["operationId"])
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    table = {(r.method, document_path(r, "/pypi/upload/"), r.operation_id) for r in ROUTES}
    assert documented == table
    for route in ROUTES:
        # The document names some parameters longer ({sid} is {session_id}), nothing else.
        assert document_path(route, "/pypi/upload/").replace("session_id", "sid").replace(
            "file_id", "fid"
        ) == route.path("/pypi/upload/")
        item = document["paths"][document_path(route, "/pypi/upload/")]
        assert [p["name"] for p in item.get("parameters", [])] == [
            PARAMETER_NAMES.get(name, name) for name in route.parameters
        ]
