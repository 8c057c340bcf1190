"""CPU of botocore itself under different client settings, against a local SeaweedFS.

    python -m tests.benchmarks.botocore_settings

For each configuration: CPU-seconds per GiB of a direct multipart upload (512 MiB from memory,
8 MiB parts), and CPU milliseconds per ``GetObject`` of a small record and per
``ListObjectsV2`` of 400 keys. Evidence for ``gateway.store.s3.client_config``: which of
botocore's payload signing, checksum and timestamp-parsing work the gateway pays for.

Then, for the records: CPU milliseconds per read and per conditional write of a 1.5 KB record
through aiobotocore (``client_config``) and through the gateway's ``RecordStore`` (its
``SmallObjects``: its own SigV4 signer, aiohttp), alternating (evidence for store/objects.py);
and CPU microseconds per signature of a record write and read, botocore's ``S3SigV4Auth``
against ``store/sigv4.py`` (evidence for the latter).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials

from gateway.devstack import start_seaweedfs
from gateway.store.record_store import RecordStore
from gateway.store.s3 import S3Config, client_config, open_client, open_small_objects
from gateway.store.sigv4 import SigV4
from tests.benchmarks.bare_status import bench_s3

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
    async with bench_s3(url) as client:
        await client.create_bucket(Bucket=BUCKET)
        await client.put_object(Bucket=BUCKET, Key="record.json", Body=b'{"a": 1}' * 60)
        await asyncio.gather(
            *(client.put_object(Bucket=BUCKET, Key=f"many/{n:04}", Body=b"{}") for n in range(400))
        )


async def records_cpu(url: str, times: int = 1000) -> str:
    """ms CPU per record read and conditional write: aiobotocore vs the gateway's store."""
    config = S3Config(url, "us-east-1", access_key_id="bench", secret_access_key="bench-secret")
    document = {"files": "x" * 1500}
    body = json.dumps(document).encode()
    async with open_client(config) as client, open_small_objects(config, client) as objs:
        records = RecordStore(objs, BUCKET, "records/")
        key = f"r-{time.monotonic_ns()}.json"
        etag = await records.create(key, document)

        async def botocore_read() -> None:
            response = await client.get_object(Bucket=BUCKET, Key=f"records/{key}")
            async with response["Body"] as stream:
                await stream.read()

        async def botocore_write() -> None:
            nonlocal etag
            answer = await client.put_object(
                Bucket=BUCKET, Key=f"records/{key}", Body=body, IfMatch=etag
            )
            etag = answer["ETag"]

        async def store_write() -> None:
            nonlocal etag
            etag = await records.replace(key, document, etag)

        async def store_read() -> None:
            await records.get(key)

        figures = [
            (name, await _cpu_ms(call, times))
            for name, call in (
                ("aiobotocore GetObject", botocore_read),
                ("RecordStore.get", store_read),
                ("aiobotocore PutObject If-Match", botocore_write),
                ("RecordStore.replace", store_write),
            )
        ]
    return ", ".join(f"{name} {ms:.3f} ms CPU" for name, ms in figures)


async def _cpu_ms(call: Callable[[], Awaitable[None]], times: int) -> float:
    started = time.process_time()
    for _ in range(times):
        await call()
    return (time.process_time() - started) * 1000 / times


def signing_us(times: int = 20000) -> str:
    """µs CPU per signature of a conditional record write and a record read, as SmallObjects
    sends them: botocore's signer (as it did until it got its own) against store/sigv4.py."""
    credentials = ReadOnlyCredentials("bench", "bench-secret", None)
    url = "http://127.0.0.1:8333/gateway/records/sessions/0123456789abcdef/summary.json"
    body = json.dumps({"files": "x" * 1500}).encode()
    signer = SigV4("us-east-1")

    def botocore_sign(method: str, data: bytes | None, headers: dict[str, str]) -> None:
        request = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
        S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(request)
        dict(request.headers.items())

    def own_sign(method: str, data: bytes | None, headers: dict[str, str]) -> None:
        signer.sign(method, url, headers, data, credentials, datetime.now(UTC))

    figures = []
    for name, sign in (("botocore S3SigV4Auth", botocore_sign), ("SigV4", own_sign)):
        for method, data, headers in (("PUT", body, {"If-Match": '"0f1e2d"'}), ("GET", None, {})):
            started = time.process_time()
            for _ in range(times):
                sign(method, data, headers)
            figures.append(f"{name} {method} {(time.process_time() - started) * 1e6 / times:.1f}")
    return ", ".join(figures) + " µs CPU per signature"


async def _main(url: str) -> None:
    await _prepare(url)
    for _ in range(2):  # twice, alternating: the machine's load changes meanwhile
        for name, config, raw_timestamps in configurations():
            print(f"{name}: {await measure(url, config, raw_timestamps)}", flush=True)
        print(f"records: {await records_cpu(url)}", flush=True)
        print(f"signing: {signing_us()}", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="botocore-settings-") as workdir:
        s3 = start_seaweedfs(Path(workdir) / "s3", Path(workdir) / "seaweedfs.log")
        try:
            asyncio.run(_main(s3.url))
        finally:
            s3.stop()


if __name__ == "__main__":
    main()
