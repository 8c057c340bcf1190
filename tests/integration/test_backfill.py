"""``upload-gateway index backfill`` over an index of 30 projects filled by twine (R-W10): the
real command, against a pypiserver of its own and the shared SeaweedFS."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path
from typing import Any

from gateway.devstack import Server, start_pypiserver, write_htpasswd
from tests.conftest import INDEX_PASSWORD, INDEX_USER, twine_upload_async
from tests.distributions import build_sdist, build_wheel
from tests.integration.replicas import write_config

PROJECTS = 30


async def backfill(config: Path, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", "index", "backfill", "--config", str(config), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_backfill_reads_every_file_once_and_says_what_it_skipped(
    seaweedfs: Server, principal_settings: list[dict[str, Any]], tmp_path: Path
) -> None:
    write_htpasswd(tmp_path / "htpasswd", {INDEX_USER: INDEX_PASSWORD})
    index = start_pypiserver(tmp_path / "packages", tmp_path / "htpasswd", tmp_path / "pypi.log")
    try:
        stem = "fill-" + secrets.token_hex(3)
        dists = [build_wheel(tmp_path, f"{stem}-{n}", "1.0") for n in range(PROJECTS)]
        dists += [build_sdist(tmp_path, f"{stem}-{n}", "1.0") for n in range(3)]
        code, output = await twine_upload_async(index.url + "/", *dists)
        assert code == 0, output
        # A file put beside the others by hand, which is no distribution at all.
        (tmp_path / "packages" / f"{stem.replace('-', '_')}_0-2.0-py3-none-any.whl").write_bytes(
            b"not a zip" * 100
        )
        config = tmp_path / "gateway.toml"
        write_config(config, seaweedfs, index, "t-" + secrets.token_hex(6), principal_settings, 1)

        first = await backfill(config)
        assert f"{PROJECTS} projects, {PROJECTS + 3} files read" in first
        assert "already known" in first
        assert "skipped 1: unreadable:" in first
        again = await backfill(config, "--project", f"{stem}-0", "--project", f"{stem}-1")
        # The corrupt file is tried again (it may have been a blip); the rest costs nothing.
        assert "2 projects, 0 files read (" in again
        assert "4 already known" in again
        assert "skipped 1: unreadable:" in again
    finally:
        index.stop()
