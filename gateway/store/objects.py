"""Small objects (the JSON records) over S3's REST API, without botocore's request pipeline.

Records are most of the gateway's S3 requests (a one-file release makes about seventy), and
each is a small body. botocore spends about 0.4 ms of CPU per request on top of the HTTP
exchange itself (serialising the call, endpoint rules, the user agent, event hooks, parsing
the answer): 0.62-0.76 ms per ``GetObject``/``PutObject`` against 0.25-0.33 ms for the same
request signed by botocore's own SigV4 signer and sent with aiohttp (measured side by side,
docs/performance.md), and less again since the signing is this package's (``sigv4.py``).
So record reads, conditional writes, deletes and the listings of record keys go this way (a
listing's answer is read for its keys and their ETags alone, not parsed into botocore's
dictionaries: a status GET lists its session record and file summaries), and so do a small
file's bytes; the bytes of larger uploads and everything else stay on aiobotocore.

What botocore would do and this keeps: path-style addresses on the client's endpoint, SigV4
with the credentials botocore resolves (keys from the settings, else its default chain,
refreshed when they expire), the S3 hop's TLS and proxy, the connect and read timeouts, the
"standard" retries (connection failures, timeouts, 5xx, throttling; up to ``attempts``
tries with jittered exponential backoff), one ``upload_gateway_s3_seconds`` observation per
call, and failures raised as botocore's ``ClientError`` (an S3 error answer) or ``OSError``
(no answer), which the rest of the gateway already handles.
"""

from __future__ import annotations

import asyncio
import html
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote_plus

import aiohttp
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import ClientError
from yarl import URL

from gateway import metrics
from gateway.outbound import Hop
from gateway.store.sigv4 import SigV4

# The S3 keys, asked for whenever a request is signed (botocore's chain may refresh them).
S3Credentials = Callable[[], Awaitable[ReadOnlyCredentials | None]]

_RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
_RETRIED_CODES = frozenset({"RequestTimeout", "SlowDown", "Throttling", "ThrottlingException"})
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
_CONTENTS = re.compile(rb"<Contents>(.*?)</Contents>", re.DOTALL)
_KEY = re.compile(rb"<Key>([^<]*)</Key>")
_ETAG = re.compile(rb"<ETag>([^<]*)</ETag>")
_NEXT = re.compile(rb"<NextContinuationToken>([^<]*)</NextContinuationToken>")
_URL_ENCODED = b"<EncodingType>url</EncodingType>"
_MAX_BACKOFF = 20.0


class S3Unreachable(OSError):
    """S3 gave no answer (refused, cut, timed out) after every attempt."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes


class SmallObjects:
    """``GET``, ``PUT`` (with ``If-Match``/``If-None-Match``) and ``DELETE`` of small objects
    on one S3 endpoint, in any bucket. A ``GET`` answers 200 or 404; any other status, and any
    failed write or delete (412, 404...), is raised as a ``ClientError`` carrying S3's status
    and code."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        endpoint_url: str,
        region: str,
        credentials: S3Credentials,
        *,
        hop: Hop,
        attempts: int,
    ):
        self._http = http
        self._endpoint = endpoint_url.rstrip("/")
        self._credentials = credentials
        self._signer = SigV4(region, "s3")
        self._hop = hop
        self._attempts = max(1, attempts)

    async def get(self, bucket: str, key: str) -> Answer:
        return await self._send("GetObject", "GET", bucket, key, expected=(200, 404))

    async def read(self, bucket: str, key: str) -> bytes:
        """The object's body; a missing object is raised as S3's 404 (``NoSuchKey``), as
        botocore's ``get_object`` raises it."""
        return (await self._send("GetObject", "GET", bucket, key)).body

    async def put(self, bucket: str, key: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        return await self._send("PutObject", "PUT", bucket, key, body, headers)

    async def delete(self, bucket: str, key: str, headers: Mapping[str, str]) -> Answer:
        return await self._send("DeleteObject", "DELETE", bucket, key, None, headers, (200, 204))

    async def listing(
        self, bucket: str, prefix: str, delimiter: str | None = None
    ) -> AsyncIterator[tuple[str, str]]:
        """The keys under ``prefix`` (``ListObjectsV2``, page after page), in S3's order,
        each with its object's ETag, quotes included: the one a ``PUT`` or ``GET`` of the
        object answers (so a record read or written at that version is known to be the one
        listed). With ``delimiter``, those not rolled up into a common prefix."""
        query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        if delimiter:
            query["delimiter"] = delimiter
        while True:
            encoded = "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
            answer = await self._send("ListObjectsV2", "GET", bucket, "", query=encoded)
            for listed in _contents(answer.body):
                yield listed
            token = _NEXT.search(answer.body)
            if token is None or b"<IsTruncated>true</IsTruncated>" not in answer.body:
                return
            query["continuation-token"] = html.unescape(token.group(1).decode())

    async def _send(
        self,
        operation: str,
        method: str,
        bucket: str,
        key: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expected: tuple[int, ...] = (200,),
        query: str = "",
    ) -> Answer:
        url = f"{self._endpoint}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        url += f"?{query}" if query else ""
        with metrics.s3_call(operation):
            for attempt in range(self._attempts):
                last = attempt == self._attempts - 1
                try:
                    answer = await self._once(method, url, body, headers or {})
                except (aiohttp.ClientError, TimeoutError) as exc:
                    if last:
                        raise S3Unreachable(
                            f"S3 did not answer {operation} {key}: {exc!r}"
                        ) from exc
                else:
                    if answer.status in expected:
                        return answer
                    code = _error_code(answer.body)
                    retried = answer.status in _RETRIED_STATUSES or code in _RETRIED_CODES
                    if last or not retried:
                        raise _client_error(operation, answer, code)
                await asyncio.sleep(random.random() * min(_MAX_BACKOFF, 2.0**attempt))
        raise AssertionError("unreachable")

    async def _once(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Answer:
        credentials = await self._credentials()
        if credentials is not None:
            # Not botocore's S3SigV4Auth: the same signature, 11-19 µs of CPU against 92-141.
            headers = self._signer.sign(method, url, headers, body, credentials, datetime.now(UTC))
        async with self._http.request(
            method,
            URL(url, encoded=True),  # as signed: yarl must not re-quote the key
            data=body,
            headers=dict(headers),
            **self._hop.options(url),
        ) as response:
            return Answer(response.status, response.headers, await response.read())


def _contents(body: bytes) -> list[tuple[str, str]]:
    """(key, ETag) of each object in one page of a listing."""
    # Keys come form-encoded (a space as "+") when the server honours encoding-type, as S3
    # and SeaweedFS do; otherwise as XML text. The ETag is always XML text (&quot; or &#34;).
    decode = unquote_plus if _URL_ENCODED in body else html.unescape
    found = []
    for element in _CONTENTS.findall(body):
        key, etag = _KEY.search(element), _ETAG.search(element)
        if key is not None:
            found.append((decode(key.group(1).decode()), html.unescape(_text(etag))))
    return found


def _text(found: re.Match[bytes] | None) -> str:
    return "" if found is None else found.group(1).decode()


def _error_code(body: bytes) -> str:
    found = _CODE.search(body)
    return found.group(1).decode(errors="replace") if found else ""


def _client_error(operation: str, answer: Answer, code: str) -> ClientError:
    """S3's error answer as botocore would raise it (``is_not_found``, ``error_code`` and the
    problem mapping read it the same way)."""
    message = answer.body[:200].decode(errors="replace")
    # botocore's stubs name this shape with a private TypedDict; it is botocore's own shape.
    response: Any = {
        "Error": {"Code": code or str(answer.status), "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": answer.status, "HTTPHeaders": dict(answer.headers)},
    }
    return ClientError(response, operation)
