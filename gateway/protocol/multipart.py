"""Framing ``multipart/form-data`` by hand, so a file can stream as one part under a known
total length: the legacy upload form, as the publisher, the legacy pass-through and the
client's legacy fallback all send it."""

from __future__ import annotations

import secrets


def boundary() -> str:
    return secrets.token_hex(16)


def content_type(boundary: str) -> str:
    return f"multipart/form-data; boundary={boundary}"


def _quote(value: str) -> str:
    # RFC 7578 §4.2: quotes and backslashes escaped, line breaks have no place in a name.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")


def part_head(
    boundary: str, name: str, filename: str | None = None, content_type: str | None = None
) -> bytes:
    disposition = f'form-data; name="{_quote(name)}"'
    if filename is not None:
        disposition += f'; filename="{_quote(filename)}"'
    head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return (head + "\r\n").encode()


def field(boundary: str, name: str, value: bytes) -> bytes:
    return part_head(boundary, name) + value + b"\r\n"


def end(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode()


def frame(fields: list[tuple[str, str]], filename: str) -> tuple[str, bytes, bytes]:
    """(content type, bytes before the file, bytes after it) of a legacy upload whose
    ``content`` part is the file, sent last."""
    mark = boundary()
    head = b"".join(field(mark, name, value.encode()) for name, value in fields)
    head += part_head(mark, "content", filename, "application/octet-stream")
    return content_type(mark), head, b"\r\n" + end(mark)
