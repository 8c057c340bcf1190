"""What every backend profile shares: errors (defined in ``gateway.backend_errors``, below
every layer that calls the index, and handed on here), bounded and credential-safe HTTP reads.

A profile answers one question for the publish logic — which files does the backing index
itself already hold for a project, and with which sha256 — so that retries and conflicts are
decided by comparing hashes, never by the status code of an upload.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import aiohttp
from packaging.utils import InvalidName, NormalizedName, canonicalize_name
from yarl import URL

from gateway.auth.config import basic_authorization
from gateway.backend_errors import (
    BackendError,
    BackendInvalidResponse,
    BackendRefused,
    BackendUnavailable,
)
from gateway.metrics import backend_call
from gateway.outbound import Hop
from gateway.settings import BackendSettings

__all__ = [
    "MAX_LISTING_BYTES",
    "Backend",
    "BackendError",
    "BackendInvalidResponse",
    "BackendRefused",
    "BackendUnavailable",
    "Document",
    "IndexFile",
    "Listing",
    "backend_for",
    "project_path",
]

_Parsed = TypeVar("_Parsed")

Listing = dict[str, str | None]
"""filename -> lowercase sha256 hex, or None when the index does not say."""

MAX_LISTING_BYTES = 20 * 1024 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Document:
    url: str
    content_type: str
    charset: str | None
    body: bytes
    status: int = 200
    content_range: str | None = None  # of a 206 answer to a Range request

    def text(self) -> str:
        return self.body.decode(self.charset or "utf-8", errors="replace")


@dataclass(frozen=True)
class IndexFile:
    """One file of a project as the index lists it, with where to download it."""

    filename: str
    url: str
    sha256: str | None
    metadata_url: str | None = None  # PEP 658: its core metadata, served on its own


class Backend(abc.ABC):
    kind: ClassVar[str]
    # pypiserver answers an unknown project with a redirect to its fallback (pypi.org):
    # what is there is not on this index, so such a redirect must read as "unknown".
    foreign_redirect_is_unknown: ClassVar[bool] = False

    _kinds: ClassVar[dict[str, type[Backend]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        # Every concrete profile names its kind; backends/__init__.py imports them all.
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            Backend._kinds[cls.kind] = cls

    def __init__(
        self,
        settings: BackendSettings,
        http: aiohttp.ClientSession,
        hop: Hop | None = None,
        *,
        max_listing_bytes: int = MAX_LISTING_BYTES,
    ) -> None:
        """``hop``: TLS and proxy towards the index (default: system CAs, environment proxy)."""
        self.settings = settings
        self._http = http
        self.hop = hop or Hop("backend")
        self._max_bytes = max_listing_bytes
        self._timeout = settings.timeout
        simple_url, self._authorization = _split_credentials(settings)
        self.simple_url = str(simple_url)
        self._origin = simple_url.origin()

    @abc.abstractmethod
    def listing_url(self, project: str) -> str:
        """Where this kind of index lists the files it holds for ``project``."""

    @abc.abstractmethod
    async def published_files(self, project: str) -> Listing:
        """filename -> sha256 hex (None when the index does not say) of every file the index
        itself holds for ``project``; {} when the project is unknown (404)."""

    @abc.abstractmethod
    async def release_files(self, project: str) -> list[IndexFile]:
        """The files the index itself holds for ``project``, with their download URLs."""

    async def fetch(
        self,
        url: str,
        *,
        accept: str,
        query: str | None = None,
        headers: Mapping[str, str] | None = None,
        operation: str = "list",
    ) -> Document | None:
        """GET ``url`` following redirects; None when the index does not know it (404, 410).

        ``query`` is put on every hop because a redirect's Location may drop it; so are
        ``headers`` (a Range, say). The body is bounded like a listing's.
        """
        extra = dict(headers or {})
        try:
            with backend_call(self.kind, operation):
                async with asyncio.timeout(self._timeout):
                    return await self._follow(_with_query(URL(url), query), accept, query, extra)
        except TimeoutError:
            raise BackendUnavailable(
                f"{_display(url)} did not answer within {self._timeout} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise BackendUnavailable(
                f"{_display(url)} could not be read: {_describe(exc)}"
            ) from None

    def parse(self, document: Document, parser: Callable[[Document], _Parsed]) -> _Parsed:
        try:
            return parser(document)
        except ValueError as exc:  # includes JSON and Unicode decoding errors
            raise BackendInvalidResponse(
                f"{_display(document.url)} answered an unreadable listing: {exc}"
            ) from None

    async def _follow(
        self, url: URL, accept: str, query: str | None, extra: dict[str, str]
    ) -> Document | None:
        for _ in range(MAX_REDIRECTS + 1):
            # Credentials only ever go to the index that was configured, never to a host a
            # redirect names.
            headers = {**extra, "Accept": accept}
            if self._authorization and url.origin() == self._origin:
                headers["Authorization"] = self._authorization
            async with self._http.get(
                url, headers=headers, allow_redirects=False, **self.hop.options(str(url))
            ) as response:
                if response.status not in _REDIRECTS:
                    return await self._document(response, url)
                target = _redirect_target(response, url)
            if target.origin() != self._origin and self.foreign_redirect_is_unknown:
                return None
            url = _with_query(target, query)
        raise BackendInvalidResponse(f"{_display(url)} redirected more than {MAX_REDIRECTS} times")

    async def _document(self, response: aiohttp.ClientResponse, url: URL) -> Document | None:
        if _means_unknown(response.status):
            return None
        _check_status(response.status, url)
        body = await _read_bounded(response, self._max_bytes, url)
        return Document(
            str(url),
            response.content_type,
            response.charset,
            body,
            response.status,
            response.headers.get("Content-Range"),
        )


def backend_for(
    settings: BackendSettings, http: aiohttp.ClientSession, hop: Hop | None = None
) -> Backend:
    """The profile for ``settings.kind``."""
    try:
        backend_class = Backend._kinds[settings.kind]
    except KeyError:
        raise ValueError(f"no backend profile for kind {settings.kind!r}") from None
    return backend_class(settings, http, hop)


def project_path(project: str) -> NormalizedName:
    """The normalized name, refusing anything that is not a project name (it goes in a URL)."""
    try:
        return canonicalize_name(project, validate=True)
    except InvalidName:
        raise ValueError(f"{project!r} is not a valid project name") from None


def _split_credentials(settings: BackendSettings) -> tuple[URL, str | None]:
    """The simple URL without user info, and the Authorization header to read it with.

    Credentials written into the URL are honoured but moved out of it, so that no URL this
    module puts in a message can carry them.
    """
    url = URL(settings.simple_url)
    bare = url.with_user(None)
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else ""
        return bare, basic_authorization(settings.username, password)
    if url.user is not None:
        return bare, basic_authorization(url.user, url.password or "")
    return bare, None


def _with_query(url: URL, query: str | None) -> URL:
    return url if query is None else url.with_query(query)


def _redirect_target(response: aiohttp.ClientResponse, url: URL) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise BackendInvalidResponse(
            f"{_display(url)} answered {response.status} without a Location"
        )
    # User info in a Location would become credentials for that host: drop it.
    return url.join(URL(location)).with_user(None)


def _means_unknown(status: int) -> bool:
    return status in (404, 410)


def _check_status(status: int, url: URL) -> None:
    if 200 <= status < 300:
        return
    if status in (401, 403):
        raise BackendRefused(f"{_display(url)} refused the configured credentials ({status})")
    if status in (408, 429) or status >= 500:
        raise BackendUnavailable(f"{_display(url)} answered {status}")
    raise BackendInvalidResponse(f"{_display(url)} answered an unexpected {status}")


async def _read_bounded(response: aiohttp.ClientResponse, limit: int, url: URL) -> bytes:
    too_big = BackendInvalidResponse(f"{_display(url)} sent a listing larger than {limit} bytes")
    if response.content_length is not None and response.content_length > limit:
        raise too_big
    body = bytearray()
    # Counted after decompression, which is what memory holds.
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def _display(url: str | URL) -> str:
    """A URL fit for messages and logs: without user info."""
    return str(URL(url).with_user(None))


def _describe(exc: BaseException) -> str:
    # aiohttp's messages name host and port but never the credentials.
    return str(exc) or type(exc).__name__
