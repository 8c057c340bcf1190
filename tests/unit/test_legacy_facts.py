"""The tap on a pass-through legacy upload (R-W10): the file's sha256, size and kept edges,
whatever the chunking, and nothing kept that the form's delimiter or trailer added."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import random
import zipfile

import pytest

from gateway.api.staged import TrailerWatch
from gateway.distribution.archive import extract_metadata
from gateway.proxy.legacy_facts import FileTap, NotHeld

BOUNDARY = b"b0undary"


def form_tail(content: bytes) -> bytes:
    """What follows the file part's header: the file, then a trailing field and the end."""
    return (
        content
        + b"\r\n--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="comment"\r\n\r\nhi'
        + b"\r\n--" + BOUNDARY + b"--\r\n"
    )  # fmt: skip


def tapped(content: bytes, cuts: list[int], edge: int = 1024) -> FileTap:
    """Feed the tap what TrailerWatch passes on, as legacy.py does, in the given chunks."""
    stream = form_tail(content)
    watch = TrailerWatch(BOUNDARY, 1 << 20, lambda raw, boundary: ({}, None, None))
    tap = FileTap(BOUNDARY, edge=edge)
    edges = [0, *sorted(cuts), len(stream)]
    for start, end in itertools.pairwise(edges):
        if passed := watch.feed(stream[start:end]):
            tap.feed(passed)
    tap.end(watch.end())
    return tap


@pytest.mark.parametrize("seed", range(20))
def test_sha256_and_size_are_the_file_s_whatever_the_chunking(seed: int) -> None:
    rng = random.Random(seed)
    content = rng.randbytes(rng.choice([0, 5, 900, 5000]))
    stream_length = len(form_tail(content))
    cuts = [rng.randrange(stream_length) for _ in range(rng.randrange(1, 12))]
    # A cut inside the delimiter after the file, where a carry is passed on before it is known.
    cuts.append(len(content) + rng.randrange(1, 8))
    tap = tapped(content, cuts)
    assert tap.complete
    assert tap.size == len(content)
    assert tap.sha256 == hashlib.sha256(content).hexdigest()


async def test_the_kept_edges_read_as_the_file() -> None:
    content = os.urandom(10_000)
    reader = tapped(content, [100, 4000, 9990]).reader()
    assert await reader.read_range(0, 1024) == content[:1024]
    assert await reader.read_range(9000, 1000) == content[9000:]
    with pytest.raises(NotHeld):
        await reader.read_range(5000, 10)


async def test_a_wheel_s_metadata_comes_from_its_tail() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("demo/payload.bin", os.urandom(600_000))
        archive.writestr("demo-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: demo\n"
                         b"Version: 1.0\nRequires-Python: >=3.9\n")  # fmt: skip
        archive.writestr("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
    tap = tapped(buffer.getvalue(), [7, 300_000], edge=128 << 10)
    extracted = await extract_metadata(tap.reader(), "demo-1.0-py3-none-any.whl")
    assert extracted.raw.startswith(b"Metadata-Version: 2.1\nName: demo")


def test_a_form_cut_before_the_delimiter_is_not_complete() -> None:
    tap = FileTap(BOUNDARY)
    tap.feed(b"some bytes of a file")
    tap.end(b"")
    assert not tap.complete
