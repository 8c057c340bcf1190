from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import ConfigurationError, load_settings

MINIMAL = """
[s3]
bucket = "b"
[backend]
upload_url = "http://index/"
simple_url = "http://index/simple"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return path


def test_minimal_file_gets_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.server.api_root == "/upload/2.0/"
    assert settings.sessions.lifetime == 7 * 86400
    assert settings.backend.simple_url == "http://index/simple/"
    assert settings.backend.kind == "warehouse"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_S3__BUCKET", "from-env")
    monkeypatch.setenv("GATEWAY_SERVER__PORT", "9999")
    settings = load_settings(write(tmp_path, MINIMAL))
    assert settings.s3.bucket == "from-env"
    assert settings.server.port == 9999


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('[server]\nport = "eighty"', "server.port"),
        ("[sessions]\nlifetime = -1", "sessions.lifetime"),
        ('[server]\npublic_base_url = "ftp://x"', "server.public_base_url"),
        ("[s3]\nbuckett = 1", "s3.buckett"),
        ('[backend]\nkind = "nexus"', "backend.kind"),
    ],
)
def test_invalid_configuration_names_the_key(tmp_path: Path, extra: str, key: str) -> None:
    text = MINIMAL.replace("[s3]", "[s3x]") if key.startswith("s3.") else MINIMAL
    text = _merge(text, extra)
    with pytest.raises(ConfigurationError, match=key.replace(".", r"\.")):
        load_settings(write(tmp_path, text))


def _merge(base: str, extra: str) -> str:
    """Append ``extra``'s keys into the matching section of ``base`` (TOML forbids repeats)."""
    header, _, body = extra.partition("\n")
    if header in base:
        return base.replace(header, f"{header}\n{body}", 1)
    if header == "[s3]":
        return base.replace("[s3x]", f"[s3]\n{body}")
    return base + "\n" + extra


def test_missing_required_section_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="backend"):
        load_settings(write(tmp_path, '[s3]\nbucket = "b"\n'))


def test_unreadable_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_settings(write(tmp_path, "[s3\n"))


def _keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    found = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _keys(annotation, f"{prefix}{key}.")
        else:
            found.append(f"{prefix}{key}")
    return found


def test_example_configuration_loads_and_documents_every_key() -> None:
    from gateway.settings import (
        OidcIssuerSettings,
        PrincipalSettings,
        ProjectPolicySettings,
        PublisherSettings,
        Settings,
        TrustPolicySettings,
    )

    example = Path(__file__).parents[2] / "config" / "gateway.example.toml"
    load_settings(example)
    text = example.read_text()
    nested = [PrincipalSettings, OidcIssuerSettings, TrustPolicySettings, ProjectPolicySettings]
    nested.append(PublisherSettings)
    for key in _keys(Settings) + [k for model in nested for k in _keys(model)]:
        leaf = key.rsplit(".", 1)[-1]
        documented = f"{leaf} =" in text or f"[[{key}]]" in text
        assert documented, f"{key} is not documented"


def test_plain_password_in_configuration_is_refused(tmp_path: Path) -> None:
    text = MINIMAL + '[[auth.principals]]\nname = "x"\npassword_hash = "hunter2"\n'
    with pytest.raises(ConfigurationError, match=r"auth\.principals\.0\.password_hash"):
        load_settings(write(tmp_path, text))
