"""What stops an Upload 2.0 operation, as exceptions (re-exported by :mod:`gateway.client`)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Protocol

from gateway.protocol.media import PROBLEM_JSON, UPLOAD_V2_JSON


class ClientError(Exception):
    """Anything that stops an Upload 2.0 operation."""


class _ErrorAnswer(Protocol):
    """What :meth:`ProblemError.from_answer` reads of an HTTP answer."""

    @property
    def status(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def media_type(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def headers(self) -> dict[str, str]: ...


class ProblemError(ClientError):
    """The server refused a request: an RFC 9457 problem document (or an error turned into one)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, str]] | None = None,
        *,
        type: str = "about:blank",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = errors or []
        self.type = type
        self.headers = dict(headers or {})

    @classmethod
    def from_answer(cls, answer: _ErrorAnswer) -> ProblemError:
        document: Any = None
        if answer.media_type in (PROBLEM_JSON, "application/json", UPLOAD_V2_JSON):
            try:
                document = json.loads(answer.body)
            except ValueError:
                document = None
        if isinstance(document, dict):
            return cls._from_document(document, answer)
        text = answer.body.decode(errors="replace").strip()
        return cls(answer.status, answer.reason, plain_text(text), headers=answer.headers)

    @classmethod
    def _from_document(cls, document: dict[str, Any], answer: _ErrorAnswer) -> ProblemError:
        errors = [
            {"source": str(item.get("source", "")), "message": str(item.get("message", ""))}
            for item in document.get("errors") or []
            if isinstance(item, dict)
        ]
        # RFC 9457 says "detail"; the PEP's example says "details": accept both.
        detail = document.get("detail", document.get("details", ""))
        return cls(
            int(document.get("status", answer.status) or answer.status),
            str(document.get("title") or answer.reason),
            str(detail or ""),
            errors,
            type=str(document.get("type", "about:blank")),
            headers=answer.headers,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "type": self.type,
            "title": self.title,
            "detail": self.detail,
            "errors": self.errors,
        }


class OperationFailed(ClientError):
    """A deferred operation (completion, publish) resolved to ``error`` or ``canceled``."""

    def __init__(self, message: str, status: str, notices: list[str]) -> None:
        super().__init__(message)
        self.status = status
        self.notices = notices


class NotUpload2Error(ClientError):
    """The URL does not speak Upload 2.0 (the legacy API, or no upload API at all)."""

    def __init__(self, url: str, status: int, content_type: str) -> None:
        super().__init__(
            f"{url} does not speak Upload 2.0 (HTTP {status}, {content_type or 'no content type'})"
        )
        self.url = url
        self.status = status
        self.content_type = content_type


class TransportError(ClientError):
    """The server could not be reached (after retrying)."""


def plain_text(text: str, limit: int = 500) -> str:
    """An error body fit for a terminal: HTML tags dropped, whitespace folded, bounded."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
