"""``upload-gateway dev``: SeaweedFS + pypiserver + the gateway, wired together on loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from pathlib import Path

from aiohttp import ClientSession, web

from gateway import logs
from gateway.devstack import Server, start_pypiserver, start_seaweedfs, write_htpasswd
from gateway.hashed_secrets import hash_secret
from gateway.serve import make_runner, until_signalled
from gateway.settings import Settings, load_settings

BUCKET = "upload-gateway"


def _credentials(state_dir: Path) -> dict[str, str]:
    """One user for both the gateway and pypiserver, kept across restarts of the stack."""
    path = state_dir / "credentials.json"
    if path.exists():
        stored: dict[str, str] = json.loads(path.read_text())
        return stored
    credentials = {"username": "dev", "password": secrets.token_urlsafe(12)}
    path.write_text(json.dumps(credentials))
    path.chmod(0o600)
    return credentials


def dev_settings(
    state_dir: Path, port: int, s3: Server, index: Server, credentials: dict[str, str]
) -> Settings:
    hashes_path = state_dir / "password.hash"
    if not hashes_path.exists():
        hashes_path.write_text(hash_secret(credentials["password"]))
    return load_settings(
        None,
        server={"host": "127.0.0.1", "port": port, "public_base_url": f"http://127.0.0.1:{port}"},
        # SeaweedFS without an identity configuration accepts any key pair.
        s3={
            "endpoint_url": s3.url,
            "bucket": BUCKET,
            "access_key_id": "dev",
            "secret_access_key": "dev-secret",
        },
        backend={
            "kind": "pypiserver",
            "upload_url": index.url + "/",
            "simple_url": index.url + "/simple/",
            "username": credentials["username"],
            "password": credentials["password"],
        },
        auth={
            "principals": [
                # May read the audit journal and yank too, so that `make run` users can try them.
                {
                    "name": credentials["username"],
                    "password_hash": hashes_path.read_text(),
                    "audit": True,
                    "yank": ["*"],
                }
            ]
        },
        # The simple API in front of the index (docs/reads.md).
        proxy={"read_proxy": True},
        logging={"json": True},
    )


def run_dev_stack(state_dir: Path, port: int) -> int:
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_run(state_dir, port))


async def _run(state_dir: Path, port: int) -> int:
    credentials = _credentials(state_dir)
    write_htpasswd(state_dir / "htpasswd", {credentials["username"]: credentials["password"]})
    servers: list[Server] = []
    stack_file = state_dir / "stack.json"
    try:
        s3 = start_seaweedfs(state_dir / "s3", state_dir / "logs" / "seaweedfs.log")
        servers.append(s3)
        index = start_pypiserver(
            state_dir / "packages", state_dir / "htpasswd", state_dir / "logs" / "pypiserver.log"
        )
        servers.append(index)
        settings = dev_settings(state_dir, port, s3, index, credentials)
        logs.configure(settings.logging.level, settings.logging.json_format)
        runner = make_runner(settings)
        await runner.setup()
        try:
            await web.TCPSite(runner, settings.server.host, settings.server.port).start()
            await _wait_ready(settings.server.public_base_url)
            stack = _describe(settings, s3, index, credentials)
            stack_file.write_text(json.dumps(stack, indent=2))
            _announce(stack, stack_file)
            await until_signalled()
        finally:
            await runner.cleanup()
    finally:
        stack_file.unlink(missing_ok=True)
        for server in reversed(servers):
            server.stop()
    return 0


def _describe(
    settings: Settings, s3: Server, index: Server, credentials: dict[str, str]
) -> dict[str, str]:
    basic = base64.b64encode(f"{credentials['username']}:{credentials['password']}".encode())
    return {
        "api": settings.server.public_base_url + settings.server.api_root,
        "legacy": settings.server.public_base_url + settings.proxy.legacy_path,
        # Staged legacy uploads (R-W6): `twine upload --repository-url` this, publish later.
        "legacy_stage": settings.server.public_base_url + settings.proxy.legacy_path + "+stage/",
        "simple": index.url + "/simple/",
        # The same index read through the gateway: PEP 691, Requires-Python, metadata, yank.
        "proxy_simple": settings.server.public_base_url + "/simple/",
        "authorization": "Basic " + basic.decode(),
        "username": credentials["username"],
        "password": credentials["password"],
        "s3_endpoint": s3.url,
    }


async def _wait_ready(base_url: str) -> None:
    async with ClientSession() as client:
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(OSError):
                    async with client.get(base_url + "/readyz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)


def _announce(stack: dict[str, str], stack_file: Path) -> None:
    print(
        f"""
upload-gateway dev stack is up (Ctrl+C stops everything).

  Upload 2.0 API   {stack["api"]}
  legacy upload    {stack["legacy"]}
  staged legacy    {stack["legacy_stage"]}
  simple index     {stack["simple"]}
  through gateway  {stack["proxy_simple"]}
  S3 (SeaweedFS)   {stack["s3_endpoint"]}
  credentials      {stack["username"]} / {stack["password"]}

Create a publishing session:
  curl -s -X POST {stack["api"]} -u {stack["username"]}:{stack["password"]} \\
       -H 'Content-Type: application/vnd.pypi.upload.v2+json' \\
       -d '{{"meta": {{"api-version": "2.0"}}, "name": "example", "version": "1.0"}}'

Who did what (the audit journal):
  curl -s {stack["api"]}audit -u {stack["username"]}:{stack["password"]}

All of this is in {stack_file}.
""",
        flush=True,
    )
