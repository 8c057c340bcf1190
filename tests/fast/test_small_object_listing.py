"""The listing of ``SmallObjects`` reads each object's key and ETag out of S3's XML, page after
page, whichever way the server escapes them (a canned ``ListObjectsV2`` answer here; against
SeaweedFS in tests/integration/test_store.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.outbound import Hop
from gateway.store.objects import SmallObjects

PAGES = {
    "": b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>b</Name><Prefix>p%2F</Prefix><EncodingType>url</EncodingType>
<IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;2</NextContinuationToken>
<Contents><Key>p%2Fa%2Bb+c.json</Key><LastModified>2026-01-01T00:00:00Z</LastModified>
<ETag>&#34;0123abcd&#34;</ETag><Size>2</Size></Contents>
<CommonPrefixes><Prefix>p%2Fdir%2F</Prefix></CommonPrefixes>
<Contents><Key>p%2Fx%26y.json</Key><ETag>&quot;4567ef&quot;</ETag><Size>2</Size></Contents>
</ListBucketResult>""",
    "t&2": b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>
<Contents><ETag>"89ab-2"</ETag><Key>p%2Fz.json</Key></Contents>
</ListBucketResult>""",
}


@pytest.fixture
async def objects() -> AsyncIterator[SmallObjects]:
    async def listing(request: web.Request) -> web.Response:
        page = PAGES[request.query.get("continuation-token", "")]
        return web.Response(body=page, content_type="application/xml")

    app = web.Application()
    app.router.add_get("/bucket/", listing)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()

    async def no_credentials() -> None:
        return None

    async with aiohttp.ClientSession() as http:
        url = str(server.make_url(""))
        yield SmallObjects(http, url, "us-east-1", no_credentials, hop=Hop("s3"), attempts=1)
    await server.close()


async def test_a_listing_gives_each_key_with_its_etag_page_after_page(
    objects: SmallObjects,
) -> None:
    found = [listed async for listed in objects.listing("bucket", "p/")]
    assert found == [
        ("p/a+b c.json", '"0123abcd"'),
        ("p/x&y.json", '"4567ef"'),
        ("p/z.json", '"89ab-2"'),
    ]
