"""Where the client's repository URL and credentials come from (twine's order, plus OIDC)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from aiohttp import ClientSession, web

from gateway.client.credentials import (
    CredentialError,
    fetch_oidc_token,
    read_pypirc,
    resolve_credentials,
)

PYPIRC = """\
[distutils]
index-servers =
    internal
    pypi

[internal]
repository = https://upload.example.com/upload/2.0/
username = release-bot
password = p%ss-from-file

[pypi]
username = __token__
password = pypi-token

[other]
repository = https://other.example.com/upload/2.0
username = someone
"""


@pytest.fixture
def pypirc(tmp_path: Path) -> Path:
    path = tmp_path / ".pypirc"
    path.write_text(PYPIRC)
    return path


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_pypirc_sections_without_interpolation_and_default_pypi_url(pypirc: Path) -> None:
    sections = read_pypirc(pypirc)
    assert "distutils" not in sections
    assert sections["internal"]["password"] == "p%ss-from-file"
    assert sections["pypi"]["repository"] == "https://upload.pypi.org/legacy/"
    assert read_pypirc(pypirc.parent / "absent") == {}


def test_a_named_section_gives_url_and_credentials(pypirc: Path) -> None:
    creds = resolve_credentials(repository="internal", config_file=pypirc, env={})
    assert creds.repository_url == "https://upload.example.com/upload/2.0/"
    assert creds.authorization == basic("release-bot", "p%ss-from-file")
    assert "p%ss" not in repr(creds)  # secrets stay out of reprs and logs


def test_command_line_beats_environment_beats_pypirc(pypirc: Path) -> None:
    env = {
        "TWINE_USERNAME": "twine-user",
        "TWINE_PASSWORD": "twine-secret",
        "UPLOAD_GATEWAY_PASSWORD": "gateway-secret",
    }
    creds = resolve_credentials(repository="internal", config_file=pypirc, env=env)
    # UPLOAD_GATEWAY_* before TWINE_*, both before the file.
    assert creds.username == "twine-user"
    assert creds.password == "gateway-secret"
    assert creds.source == "UPLOAD_GATEWAY_PASSWORD"
    creds = resolve_credentials(
        repository="internal", username="cli", password="cli-secret", config_file=pypirc, env=env
    )
    assert creds.authorization == basic("cli", "cli-secret")
    assert creds.source == "command line"


def test_repository_url_order(pypirc: Path) -> None:
    env = {"TWINE_REPOSITORY_URL": "https://twine.example.com/", "TWINE_REPOSITORY": "pypi"}
    # An explicit URL wins over everything.
    creds = resolve_credentials(
        repository_url="https://cli.example.com/", config_file=pypirc, env=env
    )
    assert creds.repository_url == "https://cli.example.com/"
    # An explicit section wins over the environment's URL.
    creds = resolve_credentials(repository="internal", config_file=pypirc, env=env)
    assert creds.repository_url == "https://upload.example.com/upload/2.0/"
    # In the environment a URL wins over a section name, as in twine.
    creds = resolve_credentials(config_file=pypirc, env=env)
    assert creds.repository_url == "https://twine.example.com/"
    creds = resolve_credentials(config_file=pypirc, env={"TWINE_REPOSITORY": "pypi"})
    assert creds.repository_url == "https://upload.pypi.org/legacy/"
    assert creds.authorization == basic("__token__", "pypi-token")
    creds = resolve_credentials(
        config_file=pypirc, env={"UPLOAD_GATEWAY_REPOSITORY_URL": "https://gw.example.com/"}
    )
    assert creds.repository_url == "https://gw.example.com/"
    creds = resolve_credentials(config_file=pypirc, env={}, fallback_url="https://state.example/")
    assert creds.repository_url == "https://state.example/"


def test_a_url_finds_the_pypirc_section_with_that_repository(pypirc: Path) -> None:
    creds = resolve_credentials(
        repository_url="https://upload.example.com/upload/2.0", config_file=pypirc, env={}
    )
    assert creds.username == "release-bot"
    assert creds.password == "p%ss-from-file"


def test_a_password_alone_is_a_token(pypirc: Path) -> None:
    creds = resolve_credentials(
        repository_url="https://x.example/", password="pypi-abc", config_file=pypirc, env={}
    )
    assert creds.authorization == basic("__token__", "pypi-abc")


def test_missing_url_or_section_is_a_usage_error(pypirc: Path) -> None:
    with pytest.raises(CredentialError, match="no repository URL"):
        resolve_credentials(config_file=pypirc, env={})
    with pytest.raises(CredentialError, match=r"no \[nope\] section"):
        resolve_credentials(repository="nope", config_file=pypirc, env={})


def test_github_actions_oidc_only_without_a_password(pypirc: Path) -> None:
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.example/?x=1",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
    }
    creds = resolve_credentials(repository_url="https://x.example/", config_file=pypirc, env=env)
    assert creds.oidc_pending
    assert creds.authorization is None
    assert creds.with_token("jwt").authorization == "Bearer jwt"
    creds = resolve_credentials(
        repository_url="https://x.example/", password="pw", config_file=pypirc, env=env
    )
    assert not creds.oidc_pending


async def test_oidc_token_is_requested_with_the_audience(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    seen = {}

    async def token(request: web.Request) -> web.Response:
        seen["audience"] = request.query.get("audience")
        seen["run"] = request.query.get("run")
        seen["authorization"] = request.headers.get("Authorization")
        return web.json_response({"value": "the-id-token"})

    app = web.Application()
    app.router.add_get("/token", token)
    server = await aiohttp_server(app)
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": str(server.make_url("/token?run=7")),
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token",
    }
    async with ClientSession() as http:
        assert await fetch_oidc_token(http, env, "my audience") == "the-id-token"
    assert seen == {"audience": "my audience", "run": "7", "authorization": "bearer request-token"}
