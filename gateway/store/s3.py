"""The S3 client, configured for throughput, and the bucket it works in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import ClientError

from gateway.outbound import Hop, TlsConfig
from gateway.store.objects import S3Credentials, SmallObjects

S3Client = Any  # aiobotocore generates its client class at run time


@dataclass(frozen=True)
class S3Config:
    """What the store needs to reach S3 (the application builds it from its settings)."""

    endpoint_url: str | None
    region: str
    access_key_id: str | None = None
    secret_access_key: str | None = None
    timeout: int = 60
    attempts: int = 3
    tls: TlsConfig = field(default_factory=TlsConfig)
    proxy: str | None = None  # None: HTTP(S)_PROXY/NO_PROXY decide; "": direct

    def hop(self) -> Hop:
        """The same TLS and proxy choice, for requests made outside aiobotocore."""
        return Hop("s3", self.tls, self.proxy)


def client_config(
    timeout: int, attempts: int, max_pool_connections: int = 64, **network: Any
) -> AioConfig:
    # Unsigned payloads and checksums only when required halve the CPU spent per uploaded GiB;
    # integrity is ours anyway (every declared hash is verified).
    return AioConfig(
        **network,
        s3={"payload_signing_enabled": False, "addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        connect_timeout=min(10, timeout),
        read_timeout=timeout,
    )


@asynccontextmanager
async def open_client(config: S3Config) -> AsyncIterator[S3Client]:
    # Both or neither: without them botocore finds credentials the usual way (environment...).
    both = bool(config.access_key_id and config.secret_access_key)
    session = get_session()
    # The gateway reads no timestamp from S3 answers: parsing every key's LastModified in a
    # listing was the largest cost of listing records (a third of its CPU).
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    async with session.create_client(
        "s3",
        endpoint_url=config.endpoint_url,
        region_name=config.region,
        config=client_config(config.timeout, config.attempts, **_network(config)),
        verify=_verify(config.tls),
        aws_access_key_id=config.access_key_id if both else None,
        aws_secret_access_key=config.secret_access_key if both else None,
    ) as client:
        yield client


@asynccontextmanager
async def open_small_objects(
    config: S3Config, client: S3Client, max_connections: int = 64
) -> AsyncIterator[SmallObjects]:
    """Record requests beside ``client`` (store/objects.py): its endpoint, the same
    credentials, TLS, proxy, timeouts and attempts."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=min(10, config.timeout), sock_read=config.timeout
    )
    connector = aiohttp.TCPConnector(limit=max_connections)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        skip_auto_headers=["User-Agent"],
    ) as http:
        yield SmallObjects(
            http,
            str(client.meta.endpoint_url),
            config.region,
            _credentials(config),
            hop=config.hop(),
            attempts=config.attempts,
        )


def _credentials(config: S3Config) -> S3Credentials:
    """The keys from the settings, else botocore's default chain (environment, profiles,
    web identity, container and instance roles), refreshed by botocore when they expire."""
    if config.access_key_id and config.secret_access_key:
        fixed = ReadOnlyCredentials(config.access_key_id, config.secret_access_key, None)

        async def configured() -> ReadOnlyCredentials | None:
            return fixed

        return configured
    chain: list[Any] = []

    async def resolved() -> ReadOnlyCredentials | None:
        if not chain:
            chain.append(await get_session().get_credentials())
        found = chain[0]
        return None if found is None else await found.get_frozen_credentials()

    return resolved


def _verify(tls: TlsConfig) -> bool | str:
    # botocore trusts its own bundle by default; the hop's choice (or the environment's
    # SSL_CERT_FILE / REQUESTS_CA_BUNDLE) replaces it, as on every other hop.
    if not tls.verify:
        return False
    return tls.trusted() or True


def _network(config: S3Config) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if config.tls.client_cert:
        cert = config.tls.client_cert
        options["client_cert"] = (cert, config.tls.client_key) if config.tls.client_key else cert
    if config.proxy is not None:
        # botocore reads HTTP(S)_PROXY/NO_PROXY itself when no proxies are configured; an
        # empty mapping means "direct".
        options["proxies"] = {"http": config.proxy, "https": config.proxy} if config.proxy else {}
    return options


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
