"""Where the repository URL and the credentials come from, the way twine finds them.

Resolution order, first hit wins, for each of URL, username and password:

1. command-line options (``--repository-url``, ``-u``, ``-p``; ``--repository NAME`` picks a
   ``.pypirc`` section, and beats a URL from the environment);
2. environment: ``UPLOAD_GATEWAY_REPOSITORY_URL`` / ``_USERNAME`` / ``_PASSWORD`` /
   ``_REPOSITORY``, then twine's ``TWINE_REPOSITORY_URL`` / ``_USERNAME`` / ``_PASSWORD`` /
   ``_REPOSITORY`` (a URL beats a section name, as in twine);
3. the ``.pypirc`` section (``--config-file``, default ``~/.pypirc``): the named one, or else
   the section whose ``repository`` is the URL in use;
4. for a password only: the system keyring (``keyring``, twine's convention: service = the
   repository URL, user = the username), unless ``--no-keyring`` or
   ``UPLOAD_GATEWAY_KEYRING=0``;
5. for a password only: in GitHub Actions (``ACTIONS_ID_TOKEN_REQUEST_URL`` and
   ``ACTIONS_ID_TOKEN_REQUEST_TOKEN`` set) an OIDC ID token is requested for
   ``--oidc-audience`` and sent as ``Bearer`` (trusted publishing).

A password without a username is an API token (username ``__token__``, as on PyPI). Secrets
never appear in ``repr`` or in messages.
"""

from __future__ import annotations

import base64
import configparser
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import aiohttp

__all__ = [
    "DEFAULT_OIDC_AUDIENCE",
    "CredentialError",
    "RepositoryCredentials",
    "fetch_oidc_token",
    "from_keyring",
    "read_pypirc",
    "resolve_credentials",
]

DEFAULT_OIDC_AUDIENCE = "upload-gateway"
TOKEN_USERNAME = "__token__"
# twine's defaults for the two well-known sections when they carry no ``repository``.
_DEFAULT_REPOSITORIES = {
    "pypi": "https://upload.pypi.org/legacy/",
    "testpypi": "https://test.pypi.org/legacy/",
}
_ENV_PREFIXES = ("UPLOAD_GATEWAY_", "TWINE_")


class CredentialError(Exception):
    """The repository or the credentials cannot be determined (a usage error)."""


@dataclass(frozen=True)
class RepositoryCredentials:
    repository_url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)  # a Bearer token (OIDC)
    source: str = "none"  # where the secret came from, for messages
    oidc_pending: bool = False  # a GitHub Actions ID token should be requested

    @property
    def authorization(self) -> str | None:
        if self.token:
            return f"Bearer {self.token}"
        if self.password is not None:
            user = self.username or TOKEN_USERNAME
            pair = f"{user}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        return None

    @property
    def basic(self) -> tuple[str, str] | None:
        if self.password is None:
            return None
        return self.username or TOKEN_USERNAME, self.password

    def with_token(self, token: str) -> RepositoryCredentials:
        return RepositoryCredentials(
            self.repository_url,
            self.username,
            None,
            token,
            "GitHub Actions OIDC",
            oidc_pending=False,
        )


def read_pypirc(path: Path) -> dict[str, dict[str, str]]:
    """Every section of a ``.pypirc`` (no interpolation: passwords may contain ``%``)."""
    parser = configparser.RawConfigParser()
    try:
        with path.open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except FileNotFoundError:
        return {}
    except (OSError, configparser.Error) as exc:
        raise CredentialError(f"{path}: cannot read it: {exc}") from None
    sections: dict[str, dict[str, str]] = {}
    for name in parser.sections():
        if name == "distutils":
            continue
        values = {key: value.strip() for key, value in parser.items(name)}
        if "repository" not in values and name in _DEFAULT_REPOSITORIES:
            values["repository"] = _DEFAULT_REPOSITORIES[name]
        sections[name] = values
    return sections


def _env(env: Mapping[str, str], key: str) -> tuple[str, str] | None:
    for prefix in _ENV_PREFIXES:
        value = env.get(prefix + key)
        if value:
            return value, prefix + key
    return None


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def resolve_credentials(
    *,
    repository_url: str | None = None,
    repository: str | None = None,
    username: str | None = None,
    password: str | None = None,
    config_file: Path | None = None,
    env: Mapping[str, str],
    fallback_url: str | None = None,
    use_keyring: bool = True,
) -> RepositoryCredentials:
    """The repository URL and credentials to use (see the module docstring for the order).

    ``fallback_url`` is the URL to use when nothing else names one (a session command uses
    the repository its session was created on).
    """
    path = config_file or Path(env.get("UPLOAD_GATEWAY_CONFIG_FILE") or "~/.pypirc").expanduser()
    url, section_name, section = _repository(
        path, read_pypirc(path), repository_url, repository, env, fallback_url
    )

    user = username
    if user is None and (found := _env(env, "USERNAME")):
        user = found[0]
    if user is None and section is not None and section.get("username"):
        user = section["username"]

    secret, source = password, "command line"
    if secret is None and (found := _env(env, "PASSWORD")):
        secret, source = found
    if secret is None and section is not None and section.get("password"):
        secret, source = section["password"], f"{path} [{section_name}]"

    if secret is None and use_keyring and env.get("UPLOAD_GATEWAY_KEYRING", "1") != "0":
        user, secret = from_keyring(url, user)
        source = "keyring"
    if secret is not None:
        return RepositoryCredentials(url, user, secret, None, source)
    oidc = bool(
        env.get("ACTIONS_ID_TOKEN_REQUEST_URL") and env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    )
    return RepositoryCredentials(url, user, None, None, "none", oidc_pending=oidc)


def _repository(
    path: Path,
    sections: dict[str, dict[str, str]],
    url: str | None,
    section_name: str | None,
    env: Mapping[str, str],
    fallback_url: str | None,
) -> tuple[str, str | None, dict[str, str] | None]:
    """The repository URL, and the ``.pypirc`` section (name, values) that names it, if any."""
    if not url and section_name is None:
        # The environment, like twine: a URL overrides a section name.
        from_env = _env(env, "REPOSITORY_URL")
        if from_env:
            url = from_env[0]
        elif named := _env(env, "REPOSITORY"):
            section_name = named[0]
    section: dict[str, str] | None = None
    if section_name is not None:
        if section_name not in sections:
            raise CredentialError(f"{path}: no [{section_name}] section")
        section = sections[section_name]
        if not url:
            url = section.get("repository")
            if not url:
                raise CredentialError(f"{path}: [{section_name}] has no repository URL")
    url = url or fallback_url
    if not url:
        raise CredentialError(
            "no repository URL: pass --repository-url, --repository NAME (a .pypirc section) "
            "or set UPLOAD_GATEWAY_REPOSITORY_URL"
        )
    if not url.startswith(("https://", "http://")):
        raise CredentialError(f"repository URL {url!r} is not an http(s) URL")
    if section is None:
        section_name, section = next(
            (
                (name, values)
                for name, values in sections.items()
                if _same_url(values.get("repository", ""), url)
            ),
            (None, None),
        )
    return url, section_name, section


def from_keyring(url: str, username: str | None) -> tuple[str | None, str | None]:
    """(username, password) from the system keyring, as twine looks them up; the password
    is None when the keyring has none (or there is no usable keyring)."""
    try:
        import keyring

        if username is not None:
            return username, keyring.get_password(url, username)
        found = keyring.get_credential(url, None)
    except Exception:  # no backend, a locked one, a broken one: same as "not there"
        return username, None
    return (found.username, found.password) if found is not None else (None, None)


async def fetch_oidc_token(
    http: aiohttp.ClientSession, env: Mapping[str, str], audience: str = DEFAULT_OIDC_AUDIENCE
) -> str:
    """A GitHub Actions OIDC ID token for ``audience`` (needs ``permissions: id-token: write``)."""
    request_url = env["ACTIONS_ID_TOKEN_REQUEST_URL"]
    separator = "&" if "?" in request_url else "?"
    url = f"{request_url}{separator}audience={quote(audience, safe='')}"
    headers = {"Authorization": f"bearer {env['ACTIONS_ID_TOKEN_REQUEST_TOKEN']}"}
    try:
        async with http.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=30)) as r:
            if r.status != 200:
                raise CredentialError(f"the GitHub Actions OIDC token request answered {r.status}")
            document = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise CredentialError(f"cannot get a GitHub Actions OIDC token: {exc}") from None
    token = document.get("value") if isinstance(document, dict) else None
    if not isinstance(token, str) or not token:
        raise CredentialError("the GitHub Actions OIDC answer carries no token")
    return token
