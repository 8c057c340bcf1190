"""The S3 client, configured for throughput, and the bucket it works in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from gateway.settings import S3Settings

S3Client = Any  # aiobotocore generates its client class at run time


def client_config(timeout: int, attempts: int, max_pool_connections: int = 64) -> AioConfig:
    # Unsigned payloads and checksums only when required halve the CPU spent per uploaded GiB;
    # integrity is ours anyway (every declared hash is verified).
    return AioConfig(
        s3={"payload_signing_enabled": False, "addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=min(10, timeout),
        read_timeout=timeout,
    )


@asynccontextmanager
async def open_client(settings: S3Settings) -> AsyncIterator[S3Client]:
    credentials: dict[str, str] = {}
    if settings.access_key_id and settings.secret_access_key:
        credentials = {
            "aws_access_key_id": settings.access_key_id,
            "aws_secret_access_key": settings.secret_access_key.get_secret_value(),
        }
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=settings.endpoint_url,
        region_name=settings.region,
        config=client_config(settings.timeout, settings.attempts),
        **credentials,
    ) as client:
        yield client


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def http_status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def is_not_found(exc: ClientError) -> bool:
    return http_status(exc) == 404 or error_code(exc) in ("NoSuchKey", "NotFound", "NoSuchUpload")


def is_precondition_failed(exc: ClientError) -> bool:
    # 409 ConditionalRequestConflict is what AWS answers when two conditional writes race.
    return http_status(exc) in (412, 409) or error_code(exc) in (
        "PreconditionFailed",
        "ConditionalRequestConflict",
    )


async def ensure_bucket(client: S3Client, bucket: str, create: bool) -> None:
    try:
        await client.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if not (is_not_found(exc) and create):
            raise
        try:
            await client.create_bucket(Bucket=bucket)
        except ClientError as create_exc:
            if error_code(create_exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
