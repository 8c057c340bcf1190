"""Tiny but valid wheels and sdists for tests, written with zipfile/tarfile only.

The archives are deterministic (fixed timestamps, owners and order), so building the same
name, version and payload twice gives identical bytes: tests of "re-upload the same file"
and "same filename, different bytes" can rely on that. ``payload`` is stored as an extra
file, so a test can vary a file's bytes or size without touching its metadata. A wheel
stores it uncompressed, so the wheel grows with it; an sdist is gzipped as a whole, so pass
random bytes (``os.urandom``) when an sdist's size matters.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import TypedDict, Unpack

__all__ = [
    "build_many_with_pypa_build",
    "build_platform_wheels",
    "build_sdist",
    "build_wheel",
    "build_with_pypa_build",
    "core_metadata",
    "distribution_stem",
    "sha256_of",
    "write_flit_project",
]

# 1980-01-01 is the earliest time a zip entry can carry.
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_TAR_TIME = 315532800  # the same instant, as a Unix timestamp


def distribution_stem(name: str) -> str:
    """The name as it appears in wheel and sdist filenames (PEP 427 / PEP 625)."""
    return re.sub(r"[-_.]+", "_", name).lower()


class MetadataFields(TypedDict, total=False):
    """The core metadata a test may choose; :func:`core_metadata` has the defaults."""

    summary: str
    requires_python: str
    requires_dist: tuple[str, ...]
    headers: tuple[str, ...]
    description: str


def core_metadata(
    name: str,
    version: str,
    *,
    summary: str = "A test distribution",
    requires_python: str = ">=3.8",
    requires_dist: tuple[str, ...] = (),
    headers: tuple[str, ...] = (),
    description: str = "",
) -> bytes:
    """``headers`` are more "Field: value" lines; ``description`` becomes the message body
    (the long description), with Metadata-Version 2.4 when either is given."""
    lines = [
        f"Metadata-Version: {'2.4' if headers or description else '2.1'}",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
        f"Requires-Python: {requires_python}",
        *(f"Requires-Dist: {requirement}" for requirement in requires_dist),
        *headers,
    ]
    return ("\n".join(lines) + "\n\n" + description).encode()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_wheel(
    tmp_path: Path,
    name: str,
    version: str,
    *,
    payload: bytes = b"",
    tag: str = "py3-none-any",
    **metadata: Unpack[MetadataFields],
) -> Path:
    """Write ``{stem}-{version}-{tag}.whl`` into ``tmp_path`` and return its path."""
    stem = distribution_stem(name)
    dist_info = f"{stem}-{version}.dist-info"
    payload_name = f"{stem}/payload.bin"
    files = {
        f"{stem}/__init__.py": b"",
        payload_name: payload,
        f"{dist_info}/METADATA": core_metadata(name, version, **metadata),
        f"{dist_info}/WHEEL": _wheel_file(tag),
    }
    files[f"{dist_info}/RECORD"] = _record(files, f"{dist_info}/RECORD")

    path = tmp_path / f"{stem}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in files.items():
            info = zipfile.ZipInfo(member, date_time=_ZIP_TIME)
            info.compress_type = (
                zipfile.ZIP_STORED if member == payload_name else zipfile.ZIP_DEFLATED
            )
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return path


# In-memory archives of exactly the members given, for tests of the archive reader.


def zip_bytes(
    files: dict[str, bytes],
    *,
    compression: int = zipfile.ZIP_DEFLATED,
    comment: bytes = b"",
) -> bytes:
    """A zip of ``files`` in memory, as it is: no RECORD or WHEEL is added (archive tests
    build broken wheels with it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.comment = comment
    return buffer.getvalue()


def tar_bytes(
    members: list[tuple[str, bytes]],
    *,
    tar_format: int = tarfile.PAX_FORMAT,
    pax_headers: dict[str, str] | None = None,
) -> bytes:
    """A tar of the given members; names ending in '/' become directories."""
    buffer = io.BytesIO()
    with tarfile.open(
        fileobj=buffer, mode="w", format=tar_format, pax_headers=pax_headers or {}
    ) as archive:
        for name, data in members:
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
            else:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def sdist_bytes(members: list[tuple[str, bytes]]) -> bytes:
    """A gzipped tar of ``members`` in memory, as they are."""
    return gzip.compress(tar_bytes(members), mtime=0)


def build_platform_wheels(
    tmp_path: Path, name: str, version: str, count: int, *, size: int = 0
) -> list[Path]:
    """``count`` wheels of one release, one per CPython minor version from 3.8, each with
    ``size`` random bytes of payload: a release with many files, as a test needs one."""
    return [
        build_wheel(
            tmp_path,
            name,
            version,
            tag=f"cp3{minor}-cp3{minor}-manylinux_2_28_x86_64",
            payload=os.urandom(size),
        )
        for minor in range(8, 8 + count)
    ]


def build_sdist(
    tmp_path: Path,
    name: str,
    version: str,
    *,
    payload: bytes = b"",
    members: dict[str, bytes] | None = None,
    **metadata: Unpack[MetadataFields],
) -> Path:
    """Write ``{stem}-{version}.tar.gz`` into ``tmp_path`` and return its path; ``members``:
    more files, by their path under the sdist's top directory."""
    stem = distribution_stem(name)
    root = f"{stem}-{version}"
    files = {
        f"{root}/PKG-INFO": core_metadata(name, version, **metadata),
        f"{root}/pyproject.toml": _pyproject(name, version),
        f"{root}/{stem}/__init__.py": b"",
        f"{root}/{stem}/payload.bin": payload,
        **{f"{root}/{path}": data for path, data in (members or {}).items()},
    }

    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in files.items():
            archive.addfile(_tar_info(member, len(data)), io.BytesIO(data))

    path = tmp_path / f"{root}.tar.gz"
    # GzipFile, not tarfile's "w:gz", because only GzipFile lets the header mtime be fixed.
    with path.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as compressed:
        compressed.write(tar_bytes.getvalue())
    return path


def _wheel_file(tag: str) -> bytes:
    return (
        f"Wheel-Version: 1.0\nGenerator: tests.distributions\nRoot-Is-Purelib: true\nTag: {tag}\n"
    ).encode()


def _record(files: dict[str, bytes], record_name: str) -> bytes:
    rows = [
        f"{member},sha256={_urlsafe_digest(data)},{len(data)}" for member, data in files.items()
    ]
    rows.append(f"{record_name},,")
    return ("\n".join(rows) + "\n").encode()


def _urlsafe_digest(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _pyproject(name: str, version: str) -> bytes:
    # Lets pip build the sdist if a test ever installs it.
    return (
        "[build-system]\n"
        'requires = ["setuptools>=68"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        "[project]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
    ).encode()


def _tar_info(member: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(member)
    info.size = size
    info.mtime = _TAR_TIME
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_flit_project(root: Path, name: str, version: str) -> Path:
    """A minimal project that ``python -m build`` and ``flit publish`` both build (flit_core
    backend, nothing to download): a package with one module and static metadata."""
    stem = distribution_stem(name)
    root.mkdir(parents=True, exist_ok=True)
    (root / stem).mkdir(exist_ok=True)
    (root / stem / "__init__.py").write_text(f'"""The {name} test package."""\n')
    (root / "README.md").write_text(f"# {name}\n")
    (root / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["flit_core>=3.4,<5"]\n'
        'build-backend = "flit_core.buildapi"\n\n'
        "[project]\n"
        f'name = "{name}"\n'
        f'version = "{version}"\n'
        'description = "A test project built by a real build frontend"\n'
        'readme = "README.md"\n'
        'requires-python = ">=3.8"\n\n'
        "[tool.flit.module]\n"
        f'name = "{stem}"\n'
    )
    return root


_BUILD_MANY = """
import sys
from build import ProjectBuilder

for source, out in zip(sys.argv[1::2], sys.argv[2::2]):
    builder = ProjectBuilder(source)
    builder.build("wheel", out)
    builder.build("sdist", out)
"""


def build_many_with_pypa_build(
    tmp_path: Path, names: list[str], version: str
) -> dict[str, list[Path]]:
    """Like :func:`build_with_pypa_build` for many projects, with pypa/build's frontend
    (what ``python -m build`` runs) in one interpreter: start-up dominates a small build."""
    arguments = []
    for name in names:
        project = write_flit_project(tmp_path / f"{name}-{version}-src", name, version)
        arguments += [str(project), str(tmp_path / f"{name}-{version}-dist")]
    subprocess.run(
        [sys.executable, "-c", _BUILD_MANY, *arguments],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return {
        name: [
            *sorted((tmp_path / f"{name}-{version}-dist").glob("*.whl")),
            *sorted((tmp_path / f"{name}-{version}-dist").glob("*.tar.gz")),
        ]
        for name in names
    }


def build_with_pypa_build(tmp_path: Path, name: str, version: str) -> list[Path]:
    """A wheel and an sdist (in that order) built by ``python -m build`` from a project
    written here. No build isolation: flit_core is in the test environment, and a test
    run must not depend on downloading a build backend."""
    project = write_flit_project(tmp_path / f"{name}-{version}-src", name, version)
    out = tmp_path / f"{name}-{version}-dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(project)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return [*sorted(out.glob("*.whl")), *sorted(out.glob("*.tar.gz"))]
