"""The upload protocol's request bodies, and its steps over a plain ``aiohttp`` session.

One place for what a client sends, shared by every tier that talks to a gateway *process*
(replicas, benchmarks, raw-socket tests) and by ``tests.integration.conftest.Api``, which
talks to an app inside the test process.
"""

from __future__ import annotations

import hashlib
from typing import Any

import aiohttp

from gateway.protocol.media import UPLOAD_V2_JSON

META = {"api-version": "2.0"}


def session_body(name: str, version: str) -> dict[str, Any]:
    return {"meta": META, "name": name, "version": version}


def file_body(filename: str, data: bytes | None = None, **overrides: Any) -> dict[str, Any]:
    """A file upload session's create request: of ``data`` (its size and sha256), with any
    field overridden or added (``size=...``, ``hashes=...`` for the bytes too large to hold
    that benchmarks stream from disk, or for the wrong values a test sends on purpose)."""
    body: dict[str, Any] = {"meta": META, "filename": filename}
    if data is not None:
        body.update(size=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()})
    return {**body, "mechanism": "http-post-bytes", **overrides}


def json_headers(authorization: str) -> dict[str, str]:
    return {"Authorization": authorization, "Content-Type": UPLOAD_V2_JSON}


async def expect_json(response: aiohttp.ClientResponse, status: int) -> Any:
    body = await response.json(content_type=None)
    assert response.status == status, body
    return body


async def create_session(
    http: aiohttp.ClientSession, api_url: str, name: str, version: str, authorization: str
) -> dict[str, Any]:
    body = session_body(name, version)
    async with http.post(api_url, json=body, headers=json_headers(authorization)) as response:
        session: dict[str, Any] = await expect_json(response, 201)
    return session


async def create_file(
    http: aiohttp.ClientSession, session: dict[str, Any], body: dict[str, Any], authorization: str
) -> dict[str, Any]:
    async with http.post(
        session["links"]["upload"], json=body, headers=json_headers(authorization)
    ) as response:
        file: dict[str, Any] = await expect_json(response, 202)
    return file
