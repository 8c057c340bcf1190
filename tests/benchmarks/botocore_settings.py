"""CPU of botocore itself under different client settings, against a local SeaweedFS.

    python -m tests.benchmarks.botocore_settings

For each configuration: CPU-seconds per GiB of a direct multipart upload (512 MiB from memory,
8 MiB parts), and CPU milliseconds per ``GetObject`` of a small record and per
``ListObjectsV2`` of 400 keys. Evidence for ``gateway.store.s3.client_config``: which of
botocore's payload signing, checksum and timestamp-parsing work the gateway pays for.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from gateway.devstack import start_seaweedfs
from gateway.store.s3 import client_config

SIZE = 512 << 20
PART = 8 << 20
BUCKET = "botocore-settings"


def configurations() -> list[tuple[str, AioConfig, bool]]:
    base: dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}}
    path = {"addressing_style": "path"}
    return [
        ("gateway client_config", client_config(60, 3), False),
        ("gateway client_config + timestamps left unparsed", client_config(60, 3), True),
        (
            "botocore defaults (signed payload, checksums when_supported)",
            AioConfig(s3=path, **base),
            False,
        ),
        (
            "unsigned payload, checksums when_supported",
            AioConfig(s3={**path, "payload_signing_enabled": False}, **base),
            False,
        ),
        (
            "signed payload, checksums when_required",
            AioConfig(
                s3=path,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                **base,
            ),
            False,
        ),
    ]


async def measure(url: str, config: AioConfig, raw_timestamps: bool) -> str:
    session = get_session()
    if raw_timestamps:
        # The gateway reads no timestamp from S3: botocore may leave them as strings.
        factory = session.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=str)
    async with session.create_client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        config=config,
    ) as client:
        await client.put_object(Bucket=BUCKET, Key="warm-up", Body=b"x")
        upload = await _upload_cpu(client) * (1 << 30) / SIZE
        get = await _per_call_cpu(client.get_object, 300, Bucket=BUCKET, Key="record.json")
        listing = await _per_call_cpu(client.list_objects_v2, 30, Bucket=BUCKET, Prefix="many/")
    return (
        f"upload {upload:.2f} CPU-s/GiB, GetObject {get:.2f} ms CPU, "
        f"ListObjectsV2 (400 keys) {listing:.1f} ms CPU"
    )


async def _upload_cpu(client: Any) -> float:
    data = os.urandom(PART)
    started = time.process_time()
    upload = await client.create_multipart_upload(Bucket=BUCKET, Key="big")
    parts = []
    for number in range(1, SIZE // PART + 1):
        response = await client.upload_part(
            Bucket=BUCKET, Key="big", UploadId=upload["UploadId"], PartNumber=number, Body=data
        )
        parts.append({"PartNumber": number, "ETag": response["ETag"]})
    await client.complete_multipart_upload(
        Bucket=BUCKET, Key="big", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    return time.process_time() - started


async def _per_call_cpu(call: Any, times: int, **kwargs: Any) -> float:
    started = time.process_time()
    for _ in range(times):
        response = await call(**kwargs)
        if "Body" in response:
            async with response["Body"] as body:
                await body.read()
    return (time.process_time() - started) * 1000 / times


async def _prepare(url: str) -> None:
    async with get_session().create_client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        config=client_config(60, 3),
    ) as client:
        await client.create_bucket(Bucket=BUCKET)
        await client.put_object(Bucket=BUCKET, Key="record.json", Body=b'{"a": 1}' * 60)
        await asyncio.gather(
            *(client.put_object(Bucket=BUCKET, Key=f"many/{n:04}", Body=b"{}") for n in range(400))
        )


async def _main(url: str) -> None:
    await _prepare(url)
    for _ in range(2):  # twice, alternating: the machine's load changes meanwhile
        for name, config, raw_timestamps in configurations():
            print(f"{name}: {await measure(url, config, raw_timestamps)}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="botocore-settings-") as workdir:
        s3 = start_seaweedfs(Path(workdir) / "s3", Path(workdir) / "seaweedfs.log")
        try:
            asyncio.run(_main(s3.url))
        finally:
            s3.stop()


if __name__ == "__main__":
    main()
