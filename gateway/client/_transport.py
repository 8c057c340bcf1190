"""How the client talks HTTP: one request with retries and backoff, answers read whole and
bounded, credentials only for the API root's origin, and the one loop that polls a deferred
(``202``) operation until it resolves."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from gateway.client._errors import ClientError, ProblemError, TransportError
from gateway.protocol.media import PROBLEM_JSON, UPLOAD_V2_JSON, media_type

USER_AGENT = "upload-gateway-client/0.1"
CHUNK_BYTES = 1 << 20
# Bodies the API answers are small JSON documents; never buffer more than this of one.
MAX_RESPONSE_BYTES = 4 << 20
# What a dropped connection or a cut-short body raises in aiohttp: worth retrying.
CONNECTION_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError)

_Result = TypeVar("_Result")


@dataclass
class RetryPolicy:
    retries: int = 4  # attempts after the first
    backoff: float = 0.5  # first delay, doubled each time
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        return min(self.backoff * 2.0**attempt, self.max_delay)


@dataclass(frozen=True)
class Answer:
    """One HTTP answer, its body read whole."""

    status: int
    reason: str
    media_type: str
    body: bytes
    headers: dict[str, str]
    url: str

    def json(self) -> dict[str, Any]:
        try:
            document = json.loads(self.body)
        except ValueError:
            raise ClientError(f"{self.url} answered invalid JSON") from None
        if not isinstance(document, dict):
            raise ClientError(f"{self.url} answered JSON that is not an object")
        return document


@dataclass
class Body:
    """A request body that can be produced again for a retry."""

    make: Callable[[], Any]
    headers: dict[str, str] = field(default_factory=dict)
    on_retry: Callable[[], None] | None = None

    @classmethod
    def json(cls, document: object, content_type: str = UPLOAD_V2_JSON) -> Body:
        encoded = json.dumps(document).encode()
        return cls(make=lambda: encoded, headers={"Content-Type": content_type})


class Transport:
    """Requests to the API at ``api_url`` (and the URLs its answers link to)."""

    def __init__(
        self,
        api_url: str,
        *,
        authorization: str | None,
        http: aiohttp.ClientSession | None,
        retry: RetryPolicy,
        max_poll_interval: float,
        request_timeout: float,
        read_timeout: float,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self._authorization = authorization
        # Told, in a sentence, each request retried and why (the CLI prints it).
        self.on_retry = on_retry or (lambda _: None)
        self._origin = URL(api_url).origin()
        self._http = http
        self._owns_http = http is None
        self.retry = retry
        self.max_poll_interval = max_poll_interval
        self._json_timeout = aiohttp.ClientTimeout(total=request_timeout)
        self.stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=30, sock_read=read_timeout
        )

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        return self._http

    async def close(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.close()
            self._http = None

    async def request(
        self, method: str, url: str, body: Body | None = None, *, streaming: bool = False
    ) -> Answer:
        """The answer to ``method url``: connection failures and 5xx answers (but 501) are
        retried with backoff, honouring ``Retry-After``; the last 5xx is returned."""
        attempt = 0
        while True:
            delay = self.retry.delay(attempt)
            try:
                answer = await self.send(method, url, body, streaming=streaming)
            except CONNECTION_ERRORS as exc:
                if attempt >= self.retry.retries:
                    raise TransportError(f"{method} {url}: {describe(exc)}") from exc
                cause = describe(exc)
            else:
                if answer.status < 500 or answer.status == 501 or attempt >= self.retry.retries:
                    return answer
                delay = min(retry_after(answer.headers) or delay, self.retry.max_delay)
                cause = f"HTTP {answer.status}"
            attempt += 1
            self.on_retry(f"retrying {method} {url} in {delay:.1f}s ({cause})")
            if body is not None and body.on_retry is not None:
                body.on_retry()
            await asyncio.sleep(delay)

    async def send(
        self, method: str, url: str, body: Body | None = None, *, streaming: bool = False
    ) -> Answer:
        """One attempt, no retry."""
        async with self.http.request(
            method,
            url,
            data=body.make() if body is not None else None,
            headers=self._headers(url, body.headers if body is not None else {}),
            allow_redirects=method in ("GET", "HEAD"),
            timeout=self.stream_timeout if streaming else self._json_timeout,
        ) as response:
            raw = await _read_whole(response, MAX_RESPONSE_BYTES)
            return Answer(
                status=response.status,
                reason=response.reason or "",
                media_type=media_type(response.headers.get("Content-Type")),
                body=raw,
                headers=dict(response.headers),
                url=str(response.url),
            )

    async def poll(
        self,
        url: str,
        read: Callable[[Answer], _Result],
        pending: Callable[[_Result], bool],
        *,
        first_delay: float | None,
        max_wait: float | None,
        waiting_for: str,
    ) -> _Result:
        """GET ``url`` until what ``read`` makes of the answer is no longer ``pending``,
        waiting as ``Retry-After`` says, else backing off up to ``max_poll_interval``."""
        deadline = None if max_wait is None else time.monotonic() + max_wait
        delay = first_delay if first_delay is not None else 1.0
        while True:
            await asyncio.sleep(min(delay, self.max_poll_interval))
            answer = await self.request("GET", url)
            result = read(answer)
            if not pending(result):
                return result
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"timed out waiting for {waiting_for}")
            delay = retry_after(answer.headers) or min(delay * 1.5, self.max_poll_interval)

    def _headers(self, url: str, extra: Mapping[str, str]) -> dict[str, str]:
        headers = {
            "Accept": f"{UPLOAD_V2_JSON}, {PROBLEM_JSON};q=0.9",
            "User-Agent": USER_AGENT,
            **extra,
        }
        if self._authorization and URL(url).origin() == self._origin:
            headers["Authorization"] = self._authorization
        return headers


def expect(answer: Answer, *statuses: int, empty_ok: bool = False) -> dict[str, Any]:
    """The Upload 2.0 document of an answer with one of ``statuses`` (``{}`` for none)."""
    if answer.status >= 400:
        raise ProblemError.from_answer(answer)
    if answer.status not in statuses:
        raise ClientError(f"{answer.url} answered an unexpected HTTP {answer.status}")
    if answer.status == 204 or (empty_ok and not answer.body):
        return {}
    if answer.media_type != UPLOAD_V2_JSON:
        raise ClientError(
            f"{answer.url} answered {answer.media_type or 'no content type'}, not {UPLOAD_V2_JSON}"
        )
    return answer.json()


async def _read_whole(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, up to ``limit`` bytes. (``content.read(n)`` answers what has arrived so
    far: a session of a few hundred files comes in several pieces.)"""
    body = bytearray()
    while chunk := await response.content.read(limit + 1 - len(body)):
        body += chunk
        if len(body) > limit:
            raise ClientError(f"{response.url} answered more than {limit} bytes")
    return bytes(body)


async def file_chunks(
    path: Path, count: Callable[[int], None], start: int = 0
) -> AsyncIterator[bytes]:
    """``path`` from ``start`` on, a chunk at a time, each counted before it is sent."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        handle.seek(start)
        while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
            count(len(chunk))
            yield chunk
    finally:
        handle.close()


def read_range(path: Path, start: int, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(start)
        return handle.read(length)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (from a number or an HTTP date); None when absent or odd."""
    value = headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def problem_type(answer: Answer) -> str:
    """The ``type`` of a problem document answer; "" for any other answer."""
    if answer.media_type != PROBLEM_JSON:
        return ""
    with contextlib.suppress(ClientError):  # a body that is not a problem document
        return str(answer.json().get("type", ""))
    return ""
