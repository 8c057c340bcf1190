"""Reading a staged legacy form's file part, and watching a passed-through form's end (R-W6),
whatever chunks the body arrives in: a delimiter may straddle any two of them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from gateway.api.legacy import _scan
from gateway.api.staged import FilePart, TrailerWatch, reason_phrase, staged_form
from gateway.protocol import multipart
from gateway.protocol.problems import Problem

BOUNDARY = "b0undary"
FILE = os.urandom(5000) + b"\r\n--b0undar" + os.urandom(100)  # almost a delimiter inside


def form(after: list[tuple[str, bytes]]) -> tuple[bytes, int]:
    """A legacy form with the file, then ``after`` fields; and where the file starts."""
    head = multipart.field(BOUNDARY, "name", b"example") + multipart.part_head(
        BOUNDARY, "content", "example-1.0.tar.gz"
    )
    tail = b"".join(multipart.field(BOUNDARY, name, value) for name, value in after)
    return head + FILE + b"\r\n" + tail + multipart.end(BOUNDARY), len(head)


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("size", [1, 7, 17, 64, 4096, 1 << 20])
async def test_the_file_part_is_exactly_the_file_whatever_the_chunks(size: int) -> None:
    body, start = form([("staged", b"true"), ("comment", b"after")])
    chunks = pieces(body[start + 3 :], size)
    part = FilePart(chunks, body[start : start + 3], BOUNDARY.encode(), 1 << 20)
    received = b"".join([bytes(chunk) async for chunk in part.content()])
    assert received == FILE
    assert part.trailing.rstrip(b"\r\n").endswith(multipart.end(BOUNDARY).rstrip(b"\r\n"))


async def test_a_body_cut_short_raises_so_the_ingest_aborts() -> None:
    body, start = form([])
    part = FilePart(pieces(body[start : start + 3000], 512), b"", BOUNDARY.encode(), 1 << 20)
    with pytest.raises(Problem) as caught:
        async for _ in part.content():
            pass
    assert caught.value.status == 400


@pytest.mark.parametrize("size", [1, 13, 64, 4096])
@pytest.mark.parametrize("budget", [1 << 20, 100])  # 100: the file's start is not searched
async def test_the_watch_passes_every_byte_on_unchanged(size: int, budget: int) -> None:
    body, start = form([("comment", b"after")])
    watch = TrailerWatch(BOUNDARY.encode(), budget, _scan, len(body) - start)
    passed = [watch.feed(chunk) async for chunk in pieces(body[start:], size)]
    assert b"".join(passed) + watch.end() == body[start:]


@pytest.mark.parametrize("size", [1, 13, 4096])
@pytest.mark.parametrize("known_length", [True, False])
async def test_the_watch_refuses_a_staged_field_after_the_file(
    size: int, known_length: bool
) -> None:
    body, start = form([("staged", b"1")])
    remaining = len(body) - start if known_length else None
    watch = TrailerWatch(BOUNDARY.encode(), 200, _scan, remaining)
    passed = b"".join([watch.feed(chunk) async for chunk in pieces(body[start:], size)])
    # The file and at most the start of the delimiter after it went on: never the form's end.
    assert body[start:].startswith(passed)
    assert len(FILE) <= len(passed) < len(FILE) + len(b"\r\n--" + BOUNDARY.encode())
    with pytest.raises(Problem) as caught:
        watch.end()
    assert caught.value.slug == "staged-too-late"


def test_the_form_names_what_a_staged_upload_needs() -> None:
    fields = {"name": "Example", "version": "1.0", "sha256_digest": "AB" * 32, "md5_digest": ""}
    staged = staged_form(fields, "example-1.0.tar.gz")
    assert staged.hashes == {"sha256": "ab" * 32}
    with pytest.raises(Problem):
        staged_form({"name": "example"}, "example-1.0.tar.gz")
    with pytest.raises(Problem):
        staged_form({"name": "example", "version": "1.0"}, None)


def test_a_reason_phrase_is_one_line_of_visible_latin_1() -> None:
    assert reason_phrase("two\r\nlines\tand é") == "two lines and ?"
    assert len(reason_phrase("x" * 1000)) == 300


def test_a_session_command_takes_a_release_as_name_and_version() -> None:
    from gateway.client.cli.session_commands import _release_reference
    from gateway.client.local import LocalCheckError

    assert _release_reference("Example==1.0") == ("Example", "1.0")
    assert _release_reference("a1b2c3") is None  # a local session id
    assert _release_reference("https://host/upload/2.0/sessions/x==y") is None
    with pytest.raises(LocalCheckError):
        _release_reference("example==")
