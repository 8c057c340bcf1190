"""The legacy form fields (R-W2) against the ground truth: what a real `twine upload` sends.

A recording aiohttp server stands in for the index; real twine (a subprocess of this
interpreter) uploads to it, and every non-file part of each POST is recorded. Our fields,
computed from the same file's METADATA/PKG-INFO bytes and hashes, must equal twine's field
for field. twine emits the metadata fields in an order that varies between runs (it walks
a frozenset), so the comparison is per field name, keeping the order of repeated values.

Nothing twine sends is ignored: twine 7.0 adds no non-metadata field beyond what we produce
(`comment` and `gpg_signature` only appear with --comment / --sign, not used here) and no
`md5_digest`. The one documented difference is that twine 7.0 drops the Metadata 2.5
`Import-Name`/`Import-Namespace` fields, which we send (test_metadata_2_5_import_names).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import BodyPartReader, web
from aiohttp.test_utils import TestServer

from gateway.protocol.legacy_upload_form import (
    LegacyFileInfo,
    encode_attestations,
    filetype_and_pyversion,
    legacy_form_fields,
)
from tests.conftest import twine_upload_async
from tests.distributions import build_wheel

Fields = list[tuple[str, str]]

RICH_METADATA = """\
Metadata-Version: 2.4
Name: Rich_Demo.pkg
Version: 1.2.0
Summary: A rich test distribution
Keywords: alpha,beta gamma,  delta
Home-page: https://example.org/home
Download-URL: https://example.org/download
Author: Ann Author
Author-email: Ann Author <ann@example.org>
Maintainer: Max Maintainer
Maintainer-email: max@example.org
License-Expression: MIT OR Apache-2.0
License-File: LICENSE
License-File: licenses/NOTICE.txt
Platform: linux
Platform: darwin
Supported-Platform: manylinux2014_x86_64
Classifier: Development Status :: 4 - Beta
Classifier: Programming Language :: Python :: 3
Classifier: Operating System :: OS Independent
Requires-Dist: requests>=2
Requires-Dist: tomli; python_version < "3.11"
Requires-Dist: pytest; extra == "test"
Requires-Python: >=3.9
Requires-External: libfoo (>=1.0)
Project-URL: Homepage, https://example.org
Project-URL: Source Code, https://example.org/src
Project-URL: Issues, https://example.org/issues
Provides-Extra: test
Provides-Extra: docs
Provides-Dist: richdemo
Obsoletes-Dist: olddemo
Description-Content-Type: text/markdown; charset=UTF-8

# Rich demo

A multi-line description
with *markdown* and unicode: café ☕

    indented block
"""

# Pre-2.4 License-File (setuptools style) is not forwarded; Description in a header with
# continuation lines instead of the body; space-separated keywords; Dynamic; an empty field
# (twine sends it, empty).
SDIST_METADATA = """\
Metadata-Version: 2.2
Name: my_sdist
Version: 0.1.post1
Summary: An sdist with a header description
Keywords: one two three
Maintainer:
Author-email: someone@example.org
License: MIT
License-File: LICENSE
Dynamic: Requires-Dist
Dynamic: Provides-Extra
Description: First line
        |second line
        |
        |last line

"""

IMPORT_NAMES_METADATA = """\
Metadata-Version: 2.5
Name: imports
Version: 3.0
Summary: Metadata 2.5 import names
Import-Name: imports
Import-Name: imports_extra
Import-Namespace: imports_ns

"""

ATTESTATION = {
    "version": 1,
    "verification_material": {"certificate": "Y2VydA==", "transparency_entries": []},
    "envelope": {"statement": "c3RhdGVtZW50", "signature": "c2lnbmF0dXJl"},
}


@dataclass
class Recorder:
    """Every non-file form field of every upload, keyed by the uploaded filename."""

    forms: dict[str, Fields] = field(default_factory=dict)
    contents: dict[str, bytes] = field(default_factory=dict)

    async def upload(self, request: web.Request) -> web.Response:
        fields: Fields = []
        filename = None
        reader = await request.multipart()
        async for part in reader:
            assert isinstance(part, BodyPartReader)
            if part.filename is not None:
                assert part.name == "content"
                filename = part.filename
                self.contents[filename] = bytes(await part.read())
            else:
                assert part.name is not None
                fields.append((part.name, await part.text()))
        assert filename is not None, "twine sent no content part"
        self.forms[filename] = fields
        return web.Response(text="OK")


async def twine_upload(url: str, *paths: Path, attestations: bool = False) -> None:
    options = ("--attestations",) if attestations else ()
    code, output = await twine_upload_async(
        url, *paths, username="x", password="y", options=options
    )
    assert code == 0, output


async def record_twine(*paths: Path, attestations: bool = False) -> Recorder:
    recorder = Recorder()
    app = web.Application()
    app.router.add_post("/", recorder.upload)
    async with TestServer(app, host="127.0.0.1") as server:
        await twine_upload(str(server.make_url("/")), *paths, attestations=attestations)
    return recorder


def write_wheel(directory: Path, filename: str, metadata: str) -> Path:
    name, version = filename.split("-")[:2]
    dist_info = f"{name}-{version}.dist-info"
    path = directory / filename
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", b"")
        archive.writestr(f"{dist_info}/METADATA", metadata.encode())
        archive.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr(f"{dist_info}/RECORD", b"")
    return path


def write_sdist(directory: Path, filename: str, metadata: str) -> Path:
    root = filename.removesuffix(".tar.gz")
    path = directory / filename
    with tarfile.open(path, "w:gz") as archive:
        for member, data in {
            f"{root}/PKG-INFO": metadata.encode(),
            f"{root}/LICENSE": b"MIT\n",
        }.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def metadata_bytes(path: Path) -> bytes:
    """The METADATA/PKG-INFO bytes, read independently of the gateway's own extraction."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            (member,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
            return archive.read(member)
    with tarfile.open(path) as archive:
        (member,) = [m for m in archive.getmembers() if m.name.endswith("/PKG-INFO")]
        extracted = archive.extractfile(member)
        assert extracted is not None
        return extracted.read()


def our_fields(path: Path, *, attestations: str | None = None) -> Fields:
    data = path.read_bytes()
    filetype, pyversion = filetype_and_pyversion(path.name)
    info = LegacyFileInfo(
        filename=path.name,
        filetype=filetype,
        pyversion=pyversion,
        sha256=hashlib.sha256(data).hexdigest(),
        blake2_256=hashlib.blake2b(data, digest_size=32).hexdigest(),
        # twine 7.0 sends no md5_digest, so none is passed here.
    )
    return legacy_form_fields(metadata_bytes(path), info, attestations=attestations)


def by_name(fields: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Field name -> its values in sending order: twine's cross-field order is random."""
    grouped: dict[str, list[str]] = {}
    for name, value in fields:
        grouped.setdefault(name, []).append(value)
    return grouped


@dataclass(frozen=True)
class Dists:
    rich_wheel: Path
    sdist: Path
    universal_wheel: Path
    import_names_wheel: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    directory = tmp_path_factory.mktemp("legacy-form")
    return Dists(
        rich_wheel=write_wheel(directory, "rich_demo_pkg-1.2.0-py3-none-any.whl", RICH_METADATA),
        sdist=write_sdist(directory, "my_sdist-0.1.post1.tar.gz", SDIST_METADATA),
        universal_wheel=build_wheel(directory, "universal", "2.0", tag="py2.py3-none-any"),
        import_names_wheel=write_wheel(
            directory, "imports-3.0-py3-none-any.whl", IMPORT_NAMES_METADATA
        ),
    )


@pytest.fixture(scope="module")
def recorded(dists: Dists) -> Recorder:
    """One twine run uploads every distribution; the tests only read what it sent."""
    paths = (dists.rich_wheel, dists.sdist, dists.universal_wheel, dists.import_names_wheel)
    return asyncio.run(record_twine(*paths))


def twine_fields(recorded: Recorder, path: Path) -> Fields:
    assert recorded.contents[path.name] == path.read_bytes()
    return recorded.forms[path.name]


def test_rich_wheel_matches_twine(recorded: Recorder, dists: Dists) -> None:
    ours = our_fields(dists.rich_wheel)
    assert by_name(ours) == by_name(twine_fields(recorded, dists.rich_wheel))
    # The cases this wheel exists for really were exercised.
    grouped = by_name(ours)
    assert grouped["name"] == ["Rich-Demo.pkg"]
    assert grouped["keywords"] == ["alpha, beta gamma, delta"]
    assert grouped["license_file"] == ["LICENSE", "licenses/NOTICE.txt"]
    assert len(grouped["project_urls"]) == 3
    assert "café ☕" in grouped["description"][0]


def test_sdist_matches_twine(recorded: Recorder, dists: Dists) -> None:
    ours = our_fields(dists.sdist)
    assert by_name(ours) == by_name(twine_fields(recorded, dists.sdist))
    grouped = by_name(ours)
    assert grouped["pyversion"] == ["source"]
    assert grouped["name"] == ["my-sdist"]
    assert "license_file" not in grouped
    assert grouped["dynamic"] == ["Requires-Dist", "Provides-Extra"]
    assert grouped["maintainer"] == [""]


def test_universal_wheel_matches_twine(recorded: Recorder, dists: Dists) -> None:
    ours = our_fields(dists.universal_wheel)
    assert by_name(ours) == by_name(twine_fields(recorded, dists.universal_wheel))
    assert by_name(ours)["pyversion"] == ["py2.py3"]


def test_metadata_2_5_import_names(recorded: Recorder, dists: Dists) -> None:
    # twine 7.0 predates Metadata 2.5 in its field table and drops these; we send them under
    # the names Warehouse's form parser reads. Everything else must still match.
    ours = by_name(our_fields(dists.import_names_wheel))
    assert ours.pop("import_name") == ["imports", "imports_extra"]
    assert ours.pop("import_namespace") == ["imports_ns"]
    assert ours == by_name(twine_fields(recorded, dists.import_names_wheel))


async def test_attestations_match_twine(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "attested", "1.0")
    attestation = tmp_path / f"{wheel.name}.publish.attestation"
    attestation.write_text(json.dumps(ATTESTATION))

    recorder = await record_twine(wheel, attestation, attestations=True)

    ours = our_fields(wheel, attestations=encode_attestations([ATTESTATION]))
    assert by_name(ours) == by_name(twine_fields(recorder, wheel))
    assert ours[-1][0] == "attestations"
