"""The client's views of the documents the server answers: a publishing session and a file
upload session as the server last described them, read with the protocol's wire models
(:mod:`gateway.protocol.models`) and given the accessors the client's callers need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gateway.client._errors import ClientError
from gateway.client._transport import Answer, expect
from gateway.protocol.models import FileResponse, SessionResponse

_Model = TypeVar("_Model", bound=BaseModel)


@dataclass
class SessionView:
    """A publishing session as the server last described it."""

    response: SessionResponse

    @classmethod
    def parse(cls, document: dict[str, Any], url: str = "the server") -> SessionView:
        return cls(_parse(SessionResponse, document, url))

    @classmethod
    def read(cls, answer: Answer, *statuses: int) -> SessionView:
        return cls.parse(expect(answer, *statuses), answer.url)

    @property
    def links(self) -> dict[str, str]:
        """The links the server gave (a key it does not offer, such as ``extend``, is absent)."""
        return self.response.links.model_dump(exclude_none=True)

    @property
    def url(self) -> str:
        return self.response.links.session

    @property
    def stage(self) -> str | None:
        return self.response.links.stage

    @property
    def status(self) -> str:
        return self.response.status

    @property
    def token(self) -> str | None:
        return self.response.session_token

    @property
    def expires_at(self) -> str | None:
        return self.response.expires_at

    @property
    def files(self) -> dict[str, dict[str, Any]]:
        """Each file's ``status``, ``link`` and ``notices``, by filename."""
        return {name: entry.model_dump() for name, entry in self.response.files.items()}

    @property
    def mechanisms(self) -> list[str]:
        return list(self.response.mechanisms)

    @property
    def notices(self) -> list[str]:
        return list(self.response.notices)

    @property
    def gates(self) -> dict[str, Any] | None:
        """What the release gates say (who approved, what is missing), when a policy covers
        the project."""
        gates = self.response.gates
        return None if gates is None else gates.model_dump(mode="json", by_alias=True)


@dataclass
class FileUploadView:
    """A file upload session as the server last described it (``response`` is None when the
    server answered a transfer without a body)."""

    response: FileResponse | None
    filename: str = ""

    @classmethod
    def parse(cls, document: dict[str, Any], filename: str, url: str) -> FileUploadView:
        return cls(_parse(FileResponse, document, url) if document else None, filename)

    @classmethod
    def read(
        cls, answer: Answer, filename: str, *statuses: int, empty_ok: bool = False
    ) -> FileUploadView:
        return cls.parse(expect(answer, *statuses, empty_ok=empty_ok), filename, answer.url)

    @property
    def described(self) -> FileResponse:
        if self.response is None:
            raise ClientError(f"the server did not describe the upload of {self.filename}")
        return self.response

    @property
    def links(self) -> dict[str, str]:
        return self.response.links.model_dump(exclude_none=True) if self.response else {}

    @property
    def url(self) -> str:
        return self.described.links.file_upload_session

    @property
    def status(self) -> str:
        return self.response.status if self.response is not None else ""

    @property
    def mechanism(self) -> dict[str, Any]:
        """``identifier`` and the mechanism's own keys (its URLs, part sizes ...)."""
        return self.response.mechanism.model_dump() if self.response is not None else {}

    @property
    def file_url(self) -> str:
        return str(self.mechanism["file_url"])

    @property
    def mechanism_identifier(self) -> str:
        return self.response.mechanism.identifier if self.response is not None else ""

    @property
    def attestations_url(self) -> str | None:
        return self.mechanism.get("attestations_url")

    @property
    def notices(self) -> list[str]:
        return list(self.response.notices) if self.response is not None else []


def _parse(model: type[_Model], document: dict[str, Any], url: str) -> _Model:
    """A response document as the protocol's model; a clear error when it is not one."""
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        raise ClientError(
            f"{url} answered a document Upload 2.0 does not describe: {where}: {first['msg']}"
        ) from None
