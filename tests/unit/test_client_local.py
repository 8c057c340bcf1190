"""The client's local checks (before any network) and its grouping into sessions."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from gateway.client.local import (
    LocalCheckError,
    LocalFile,
    expand_inputs,
    group_releases,
    inspect_distribution,
    inspect_distributions,
)
from tests.distributions import build_sdist, build_wheel, sha256_of


async def test_a_good_wheel_and_sdist_are_described(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "Foo_Bar", "1.0", payload=b"x" * 1000)
    dist = await inspect_distribution(wheel)
    assert (dist.name, dist.normalized_name, str(dist.version)) == ("Foo_Bar", "foo-bar", "1.0")
    assert dist.size == wheel.stat().st_size
    assert dist.sha256 == sha256_of(wheel)
    assert dist.blake2_256 == hashlib.blake2b(wheel.read_bytes(), digest_size=32).hexdigest()
    assert dist.metadata.startswith(b"Metadata-Version: 2.1")
    sdist = await inspect_distribution(build_sdist(tmp_path, "Foo_Bar", "1.0"))
    assert not sdist.is_wheel


async def test_local_file_reads_ranges(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    reader = LocalFile(path)
    assert reader.size == 10
    assert await reader.read_range(2, 3) == b"234"
    assert await reader.read_range(8, 100) == b"89"
    assert await reader.read_range(10, 5) == b""


async def test_metadata_that_contradicts_the_filename_is_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "foo", "1.0")
    renamed = tmp_path / "foo-2.0-py3-none-any.whl"
    renamed.write_bytes(wheel.read_bytes())
    with pytest.raises(LocalCheckError, match=r"foo-2\.0-py3-none-any\.whl: .*version '1\.0'"):
        await inspect_distribution(renamed)
    other = tmp_path / "bar-1.0-py3-none-any.whl"
    other.write_bytes(wheel.read_bytes())
    with pytest.raises(LocalCheckError, match=r"bar-1\.0-py3-none-any\.whl: .*project 'foo'"):
        await inspect_distribution(other)


@pytest.mark.parametrize(
    "name", ["foo.zip", "foo-1.0.whl", "foo-1.0-py3-none-any.egg", "not a dist.tar.gz"]
)
async def test_invalid_filenames_are_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"whatever")
    with pytest.raises(LocalCheckError, match=name.replace(".", r"\.")):
        await inspect_distribution(path)


async def test_unreadable_archives_are_refused(tmp_path: Path) -> None:
    garbage = tmp_path / "foo-1.0-py3-none-any.whl"
    garbage.write_bytes(b"not a zip at all" * 100)
    with pytest.raises(LocalCheckError, match=r"foo-1\.0-py3-none-any\.whl"):
        await inspect_distribution(garbage)
    no_metadata = tmp_path / "bar-1.0-py3-none-any.whl"
    with zipfile.ZipFile(no_metadata, "w") as archive:
        archive.writestr("bar/__init__.py", "")
    with pytest.raises(LocalCheckError, match=r"bar-1\.0-py3-none-any\.whl"):
        await inspect_distribution(no_metadata)


async def test_the_first_bad_file_in_command_line_order_is_named(tmp_path: Path) -> None:
    good = build_wheel(tmp_path, "foo", "1.0")
    bad = tmp_path / "foo-1.0.tar.gz"
    bad.write_bytes(b"\x1f\x8b broken")
    with pytest.raises(LocalCheckError, match=r"foo-1\.0\.tar\.gz"):
        await inspect_distributions([good, bad])


def test_inputs_skip_signatures_and_refuse_missing_or_duplicate(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "foo", "1.0")
    signature = tmp_path / f"{wheel.name}.asc"
    signature.write_text("sig")
    assert expand_inputs([wheel, signature, wheel]) == [wheel]
    with pytest.raises(LocalCheckError, match=r"nope\.whl: no such file"):
        expand_inputs([wheel, tmp_path / "nope.whl"])
    with pytest.raises(LocalCheckError, match="no distribution files"):
        expand_inputs([signature])
    (tmp_path / "copy").mkdir()
    copy = tmp_path / "copy" / wheel.name
    copy.write_bytes(wheel.read_bytes())
    with pytest.raises(LocalCheckError, match="given twice"):
        expand_inputs([wheel, copy])


async def test_attestations_are_found_next_to_the_file(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, "foo", "1.0")
    with pytest.raises(LocalCheckError, match="no attestation"):
        await inspect_distribution(wheel, attestations=True)
    (tmp_path / f"{wheel.name}.publish.attestation").write_text(json.dumps({"version": 1}))
    dist = await inspect_distribution(wheel, attestations=True)
    assert dist.attestations == ({"version": 1},)


async def test_grouping_by_normalized_name_and_version(tmp_path: Path) -> None:
    paths = [
        build_sdist(tmp_path, "foo", "1.0"),
        build_wheel(tmp_path, "bar", "2.0"),
        build_wheel(tmp_path, "Foo", "1.0.0", tag="py2-none-any"),  # same release as foo 1.0
        build_wheel(tmp_path, "foo", "1.0", tag="py3-none-any"),
        build_sdist(tmp_path, "foo", "1.1"),
    ]
    releases = group_releases(await inspect_distributions(paths))
    assert [(r.name, r.version) for r in releases] == [
        ("foo", "1.0"),
        ("bar", "2.0"),
        ("foo", "1.1"),
    ]
    first = releases[0]
    assert [d.filename for d in first.files] == [
        "foo-1.0.0-py2-none-any.whl",
        "foo-1.0-py3-none-any.whl",
        "foo-1.0.tar.gz",  # wheels first, the sdist last
    ]
    assert first.key == ("foo", first.files[0].version)
