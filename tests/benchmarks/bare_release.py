"""The baseline of the release figures: the simplest program that stages a release in S3 and
then puts it on the index, the job the gateway does for a release, without its protocol.

    python -m tests.benchmarks.bare_release --s3 URL --bucket B --index URL \\
        --username U --password P [--stage-only] FILE...

One process, one file at a time as twine does: every file ``PUT`` to S3 (one request each,
no conditional record, no session), then, unless ``--stage-only``, every file read back
(``GET``) and posted to the index as a legacy ``file_upload`` form (the sdist last). What it
costs over `twine upload` straight to the index is the least a staging service can add on the
same machine: the ratio goals of the release group are judged against it (docs/figures.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
from pathlib import Path

import aiohttp
from packaging.utils import parse_sdist_filename, parse_wheel_filename

from tests.benchmarks.bare_status import bench_s3


def _form(name: str, data: bytes) -> aiohttp.FormData:
    """The fields a legacy index needs (pypiserver reads the project from the filename)."""
    if name.endswith(".whl"):
        project, version, _, tags = parse_wheel_filename(name)
        filetype, pyversion = "bdist_wheel", next(iter(tags)).interpreter
    else:
        project, version = parse_sdist_filename(name)
        filetype, pyversion = "sdist", "source"
    form = aiohttp.FormData()
    for field, value in (
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", "2.1"),
        ("name", str(project)),
        ("version", str(version)),
        ("filetype", filetype),
        ("pyversion", pyversion),
        ("sha256_digest", hashlib.sha256(data).hexdigest()),
    ):
        form.add_field(field, value)
    form.add_field("content", data, filename=name, content_type="application/octet-stream")
    return form


async def _run(args: argparse.Namespace) -> None:
    paths = sorted(args.files, key=lambda p: p.name.endswith(".tar.gz"))  # the sdist last
    auth = aiohttp.BasicAuth(args.username, args.password)
    async with bench_s3(args.s3) as s3, aiohttp.ClientSession(auth=auth) as http:
        for path in paths:
            await s3.put_object(Bucket=args.bucket, Key="bare/" + path.name, Body=path.read_bytes())
        if args.stage_only:
            return
        for path in paths:
            answer = await s3.get_object(Bucket=args.bucket, Key="bare/" + path.name)
            async with answer["Body"] as body:
                data = await body.read()
            async with http.post(args.index, data=_form(path.name, data)) as response:
                response.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--s3", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--index", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--stage-only", action="store_true")
    parser.add_argument("files", nargs="+", type=Path)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
