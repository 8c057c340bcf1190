"""One legacy ``multipart/form-data`` upload, with the file streamed from S3 as its last part.

The body is framed by hand so its exact length is known up front: a ``Content-Length`` keeps
every legacy index happy (some do not accept chunked uploads), and the file itself is never
held in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from gateway.auth.config import basic_authorization
from gateway.outbound import Hop
from gateway.protocol.multipart import frame

USER_AGENT = "upload-gateway/0.1"


@dataclass(frozen=True)
class UploadAnswer:
    status: int
    reason: str
    body: str


async def post_file(
    http: aiohttp.ClientSession,
    url: str,
    fields: list[tuple[str, str]],
    filename: str,
    size: int,
    content: AsyncIterator[bytes],
    credentials: tuple[str, str] | None,
    read_timeout: float,
    hop: Hop,
) -> UploadAnswer:
    content_type, head, tail = frame(fields, filename)

    async def body() -> AsyncIterator[bytes]:
        yield head
        async for chunk in content:
            yield chunk
        yield tail

    headers = {
        "Content-Type": content_type,
        "Content-Length": str(len(head) + size + len(tail)),
        # Not "twine": pypiserver answers 400 instead of 409 to a twine re-upload.
        "User-Agent": USER_AGENT,
    }
    if credentials:
        headers["Authorization"] = basic_authorization(*credentials)
    async with http.post(
        url,
        data=body(),
        headers=headers,
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout),
        **hop.options(url),
    ) as response:
        text = (await response.content.read(64 * 1024)).decode(errors="replace")
        return UploadAnswer(response.status, response.reason or "", text)
