"""The baseline of ``status_rps_ratio``: the simplest server doing a status GET's job.

One aiohttp handler that reads one JSON record from S3 with aiobotocore (the gateway's own
client configuration, so both sides pay the same botocore costs) and returns it as JSON. No
authentication, no listing, no logging, no metrics: what a session status costs at the least.

    python -m tests.benchmarks.bare_status --port P --endpoint URL --bucket B --key K
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiobotocore.session import get_session
from aiohttp import web

from gateway.store.s3 import client_config

CLIENT = web.AppKey("client", object)


def bench_s3(endpoint: str) -> Any:
    """An aiobotocore S3 client (a context manager) on the benchmark's SeaweedFS, with the
    gateway's own client configuration."""
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
        config=client_config(timeout=60, attempts=3),
    )


def make_app(endpoint: str, bucket: str, key: str) -> web.Application:
    app = web.Application()

    async def client(app: web.Application) -> AsyncIterator[None]:
        async with bench_s3(endpoint) as s3:
            app[CLIENT] = s3
            yield

    async def status(request: web.Request) -> web.Response:
        response = await request.app[CLIENT].get_object(Bucket=bucket, Key=key)  # type: ignore[attr-defined]  # aiobotocore's client class is generated at run time
        async with response["Body"] as body:
            record = json.loads(await body.read())
        return web.json_response(record)

    async def ready(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.cleanup_ctx.append(client)
    app.router.add_get("/status", status)
    app.router.add_get("/readyz", ready)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args()
    app = make_app(args.endpoint, args.bucket, args.key)
    asyncio.run(_serve(app, args.port))


async def _serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
