from __future__ import annotations

from aiohttp.test_utils import TestClient

from gateway.app import create_app


async def test_healthz(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200


async def test_readyz_checks_s3_and_backend(client: TestClient) -> None:
    response = await client.get("/readyz")
    body = await response.json()
    assert response.status == 200, body
    assert body["checks"] == {"s3": "ok", "backend": "ok"}


async def test_readyz_reports_unreachable_backend(aiohttp_client, make_settings) -> None:  # type: ignore[no-untyped-def]
    from gateway.devstack import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(backend={"upload_url": dead + "/", "simple_url": dead + "/simple/"})
    client = await aiohttp_client(create_app(settings, run_sweeper=False))
    response = await client.get("/readyz")
    body = await response.json(content_type="application/problem+json")
    assert response.status == 503
    assert [error["source"] for error in body["errors"]] == ["backend"]
    assert body["errors"][0]["message"].startswith("unreachable")
