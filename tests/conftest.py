"""Real servers for the whole test run: SeaweedFS (S3) and pypiserver, started once.

Tests isolate themselves by key prefix and project name, never by restarting servers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway import logs
from gateway.devstack import Server, start_devpi, start_pypiserver, start_seaweedfs, write_htpasswd
from gateway.hashed_secrets import hash_secret
from gateway.settings import Settings, load_settings
from tests.distributions import build_sdist, build_wheel

BUCKET = "gateway-tests"
# pip as the tests run it: quiet about its own version, never a cached download.
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-cache-dir")


def pytest_configure(config: pytest.Config) -> None:
    # As the service logs, but readable: structlog's unconfigured default renders every
    # logged exception as a rich traceback with locals, which costs a second or two each.
    logs.configure("info", json_format=False)


INDEX_USER = "indexer"
INDEX_PASSWORD = "index-secret"


@dataclass(frozen=True)
class User:
    name: str
    password: str
    projects: tuple[str, ...]

    @property
    def authorization(self) -> str:
        return "Basic " + base64.b64encode(f"{self.name}:{self.password}".encode()).decode()


ALICE = User("alice", "alice-password", ("*",))
BOB = User("bob", "bob-password", ("bob-*",))
TOKEN = "pypi-" + "t" * 40


def twine_command(
    repository_url: str,
    *paths: Path,
    username: str = INDEX_USER,
    password: str = INDEX_PASSWORD,
    options: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The ``twine upload`` command line and its environment."""
    # TWINE_* from the developer's shell must not redirect or re-authenticate the upload.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TWINE_")}
    command = [sys.executable, "-m", "twine", "upload", "--repository-url", repository_url]
    command += ["-u", username, "-p", password, "--non-interactive", "--disable-progress-bar"]
    return [*command, *options, *map(str, paths)], env


def twine_upload(repository_url: str, *paths: Path) -> None:
    command, env = twine_command(repository_url, *paths)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


async def twine_upload_async(
    repository_url: str,
    *paths: Path,
    username: str = INDEX_USER,
    password: str = INDEX_PASSWORD,
    options: tuple[str, ...] = (),
) -> tuple[int, str]:
    """twine as a subprocess that leaves the event loop free (for servers in this process)."""
    command, env = twine_command(
        repository_url, *paths, username=username, password=password, options=options
    )
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode()


@pytest.fixture(scope="session")
def servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def seaweedfs(servers_dir: Path) -> Iterator[Server]:
    server = start_seaweedfs(servers_dir / "s3", servers_dir / "seaweedfs.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pypiserver(servers_dir: Path) -> Iterator[Server]:
    htpasswd = servers_dir / "htpasswd"
    write_htpasswd(htpasswd, {INDEX_USER: INDEX_PASSWORD})
    server = start_pypiserver(servers_dir / "packages", htpasswd, servers_dir / "pypiserver.log")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def devpi(servers_dir: Path) -> Iterator[Server]:
    server = start_devpi(
        servers_dir / "devpi", servers_dir / "devpi.log", INDEX_USER, INDEX_PASSWORD
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def principal_settings() -> list[dict[str, object]]:
    # Hashing is deliberately slow, so it happens once per run.
    return [
        {"name": ALICE.name, "password_hash": hash_secret(ALICE.password), "projects": ["*"]},
        {"name": BOB.name, "password_hash": hash_secret(BOB.password), "projects": ["bob-*"]},
        {"name": "ci", "token_hash": hash_secret(TOKEN), "projects": ["*"]},
    ]


def stack_sections(
    seaweedfs: Server, pypiserver: Server, principals: list[dict[str, object]], prefix: str
) -> dict[str, dict[str, object]]:
    """The configuration sections that wire a gateway to the shared servers, with its records
    under ``prefix``."""
    return {
        "s3": {
            "endpoint_url": seaweedfs.url,
            "bucket": BUCKET,
            "prefix": prefix,
            "access_key_id": "test",
            "secret_access_key": "test-secret",
        },
        "backend": {
            "kind": "pypiserver",
            "upload_url": pypiserver.url + "/",
            "simple_url": pypiserver.url + "/simple/",
            "username": INDEX_USER,
            "password": INDEX_PASSWORD,
        },
        "auth": {"principals": principals},
    }


@pytest.fixture
def make_settings(
    seaweedfs: Server, pypiserver: Server, principal_settings: list[dict[str, object]]
):  # type: ignore[no-untyped-def]
    """Settings wired to the shared servers, under a key prefix of this test's own."""
    prefix = "t-" + secrets.token_hex(6)

    def make(**sections: dict[str, object]) -> Settings:
        values = stack_sections(seaweedfs, pypiserver, principal_settings, prefix)
        values["server"] = {"public_base_url": "https://uploads.example.test"}
        for section, overrides in sections.items():
            values.setdefault(section, {}).update(overrides)
        return load_settings(None, **values)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:  # type: ignore[no-untyped-def]
    return make_settings()


@pytest.fixture
def project_name() -> str:
    """A project name no other test uses."""
    return "proj-" + secrets.token_hex(4)


@pytest.fixture
def wheel(tmp_path: Path, project_name: str) -> Path:
    """A small valid wheel of ``project_name`` 1.0, for every tier."""
    return build_wheel(tmp_path, project_name, "1.0", payload=b"wheel payload")


@pytest.fixture
def sdist(tmp_path: Path, project_name: str) -> Path:
    return build_sdist(tmp_path, project_name, "1.0", payload=b"sdist payload")
