"""Record requests signed by store/sigv4.py, against a SeaweedFS that verifies signatures (the
shared one accepts anything, so it proves nothing about them)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from gateway.devstack import Server, start_seaweedfs
from gateway.store.objects import SmallObjects
from gateway.store.s3 import S3Config, ensure_bucket, http_status, open_client, open_small_objects

BUCKET = "signed-records"
ACCESS_KEY = "gateway-signer"
SECRET_KEY = "signer/secret+key=="
ODD = "dir with space/a+b ~c %d é=f.json"


@pytest.fixture(scope="module")
def verifying_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    where = tmp_path_factory.mktemp("signed-s3")
    identities = {
        "identities": [
            {
                "name": "gateway",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    config = where / "s3.json"
    config.write_text(json.dumps(identities))
    server = start_seaweedfs(where / "data", where / "seaweedfs.log", s3_config=config)
    yield server
    server.stop()


async def small_objects(url: str, secret_key: str) -> AsyncIterator[SmallObjects]:
    config = S3Config(url, "us-east-1", access_key_id=ACCESS_KEY, secret_access_key=secret_key)
    async with open_client(config) as client:
        await ensure_bucket(client, BUCKET, create=True)
        async with open_small_objects(config, client) as objects:
            yield objects


@pytest.fixture
async def objects(verifying_s3: Server) -> AsyncIterator[SmallObjects]:
    async for made in small_objects(verifying_s3.url, SECRET_KEY):
        yield made


async def test_signed_requests_are_accepted(objects: SmallObjects, tmp_path: Path) -> None:
    prefix = f"{tmp_path.name}/a b+c/"
    created = await objects.put(BUCKET, prefix + ODD, b'{"v": 1}', {"If-None-Match": "*"})
    assert created.status == 200
    read = await objects.get(BUCKET, prefix + ODD)
    assert (read.status, read.body) == (200, b'{"v": 1}')
    replaced = await objects.put(
        BUCKET,
        prefix + ODD,
        b'{"v": 2}',
        {"If-Match": created.headers["ETag"], "Content-Type": "application/json"},
    )
    assert replaced.status == 200
    await objects.put(BUCKET, f"{tmp_path.name}/a b-c/other.json", b"{}", {})
    assert [key async for key, _ in objects.listing(BUCKET, prefix)] == [prefix + ODD]
    await objects.delete(BUCKET, prefix + ODD, {})
    assert (await objects.get(BUCKET, prefix + ODD)).status == 404


async def test_a_wrong_secret_is_refused(verifying_s3: Server, objects: SmallObjects) -> None:
    # The bucket exists (``objects`` made it); these keys sign for it with the wrong secret.
    config = S3Config(verifying_s3.url, "us-east-1", ACCESS_KEY, "not-the-secret", attempts=1)
    async with open_client(config) as client, open_small_objects(config, client) as wrong:
        with pytest.raises(ClientError) as refused:
            await wrong.get(BUCKET, ODD)
        assert http_status(refused.value) == 403
        with pytest.raises(ClientError) as refused:
            await wrong.put(BUCKET, ODD, b"{}", {"If-None-Match": "*"})
        assert http_status(refused.value) == 403
    assert (await objects.get(BUCKET, ODD)).status == 404
