"""Configuration: a TOML file plus ``GATEWAY_*`` environment overrides.

Environment variables win over the file so that a container image can ship one file and a
deployment can override single keys (``GATEWAY_S3__BUCKET=...``; nested keys use ``__``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.hashed_secrets import is_hash
from gateway.mechanisms import HTTP_POST_BYTES, RESUMABLE, Mechanism
from gateway.outbound import TlsConfig
from gateway.store.s3 import S3Config

DAY = 24 * 60 * 60
MiB = 1024 * 1024

PositiveSeconds = Annotated[int, Field(gt=0)]


def _readable_file(value: str) -> str:
    if not Path(value).is_file():
        raise ValueError(f"{value} is not a readable file")
    return value


# A file the gateway reads (certificates, keys, CA bundles): refused at load when it is not one.
ReadableFile = Annotated[str, AfterValidator(_readable_file)]

AuthenticatorName = Literal["config", "passthrough", "oidc"]
DEFAULT_CHAIN: tuple[AuthenticatorName, ...] = ("config", "oidc", "passthrough")
DEFAULT_MECHANISMS: tuple[Mechanism, ...] = (RESUMABLE, HTTP_POST_BYTES)


class Section(BaseModel):
    # A misspelt key must fail loudly instead of silently keeping a default.
    model_config = ConfigDict(extra="forbid")


class OutboundSettings(Section):
    """TLS and proxy settings of one outbound hop (sections that dial out inherit them)."""

    ca_bundle: ReadableFile | None = Field(
        None,
        description="PEM file of the CAs this hop trusts; default: the system store "
        "(SSL_CERT_FILE / REQUESTS_CA_BUNDLE honoured).",
    )
    client_cert: ReadableFile | None = Field(
        None, description="PEM client certificate (mutual TLS); may hold the key too."
    )
    client_key: ReadableFile | None = Field(
        None, description="PEM key of client_cert, if separate."
    )
    verify: bool = Field(
        True, description="false turns certificate checks off (labs only; logged at start-up)."
    )
    outbound_proxy: str | None = Field(
        None,
        description="Proxy URL for this hop, overriding HTTP(S)_PROXY/NO_PROXY; "
        '"" connects directly. Unset: the environment decides.',
    )

    @field_validator("client_key")
    @classmethod
    def _key_needs_a_certificate(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not info.data.get("client_cert"):
            raise ValueError("client_key needs client_cert")
        return value

    def tls(self) -> TlsConfig:
        return TlsConfig(self.ca_bundle, self.client_cert, self.client_key, self.verify)


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    public_base_url: str = Field(
        "http://127.0.0.1:8080",
        description="Scheme, host and optional path prefix every absolute link is built from.",
    )
    api_root: str = "/upload/2.0/"
    drain_timeout: PositiveSeconds = 30
    shutdown_grace: float = Field(
        0,
        ge=0,
        description="Seconds between SIGTERM and closing the listener during which readiness "
        "fails but every request is still served, so that a load balancer probing readiness "
        "stops sending here first. 0 in Kubernetes, where the pod's preStop sleep does this.",
    )
    idle_timeout: PositiveSeconds = Field(
        15,
        description="A connection that has not sent a whole request head this long after opening "
        "or after its last response is closed (the slowloris guard; aiohttp's keep-alive timeout).",
    )
    client_timeout: PositiveSeconds = Field(
        60, description="A client that stops sending a request body this long is cut off (408)."
    )
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Addresses (CIDR) of the reverse proxies whose X-Forwarded-For is believed "
        "when recording a client's address; none by default.",
    )
    tls_cert_file: ReadableFile | None = Field(
        None,
        description="PEM certificate (chain) to serve HTTPS with; re-read on SIGHUP. Unset: "
        "plain HTTP (TLS ends at an ingress).",
    )
    tls_key_file: ReadableFile | None = Field(
        None, description="Its key, when not in tls_cert_file."
    )
    tls_client_ca_file: ReadableFile | None = Field(
        None, description="PEM CAs whose client certificates are required (mutual TLS)."
    )

    @model_validator(mode="after")
    def _tls_needs_a_certificate(self) -> ServerSettings:
        if (self.tls_key_file or self.tls_client_ca_file) and not self.tls_cert_file:
            raise ValueError("tls_key_file and tls_client_ca_file need tls_cert_file")
        return self

    @field_validator("public_base_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("api_root")
    @classmethod
    def _slashes_on_both_ends(cls, value: str) -> str:
        return "/" + value.strip("/") + "/" if value.strip("/") else "/"


class S3Settings(OutboundSettings):
    endpoint_url: str | None = Field(None, description="None means AWS S3 itself.")
    region: str = "us-east-1"
    bucket: str
    prefix: str = Field("", description="Key prefix, so several gateways can share a bucket.")
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    create_bucket: bool = True
    part_size: int = Field(8 * MiB, ge=5 * MiB, le=512 * MiB)
    timeout: PositiveSeconds = Field(
        60, description="Seconds to wait for S3 to answer (connecting: at most 10)."
    )
    attempts: int = Field(
        3, ge=1, le=10, description="Tries per S3 call, with backoff, before it counts as failed."
    )

    def store_config(self) -> S3Config:
        secret = self.secret_access_key.get_secret_value() if self.secret_access_key else None
        return S3Config(
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=secret,
            timeout=self.timeout,
            attempts=self.attempts,
            tls=self.tls(),
            proxy=self.outbound_proxy,
        )

    @field_validator("prefix")
    @classmethod
    def _prefix_is_a_folder(cls, value: str) -> str:
        value = value.strip("/")
        return value + "/" if value else ""


class BackendSettings(OutboundSettings):
    kind: Literal["warehouse", "pypiserver", "devpi"] = "warehouse"
    upload_url: str
    simple_url: str
    username: str | None = None
    password: SecretStr | None = None
    timeout: PositiveSeconds = 60
    max_connections: int = Field(
        32,
        ge=1,
        description="Connections this process opens to the index at once (uploads, listings, "
        "proxied requests); more requests queue in the gateway. Keep it under the index's own "
        "connection limit (waitress, pypiserver's default server: 100).",
    )

    listing_max_age: float = Field(
        10,
        ge=0,
        description="Seconds a project's listing read for a file create serves the next ones "
        "(they only ask it for advice: a publish always reads its own); 0 = every create "
        "reads it.",
    )
    index_checks: bool | None = Field(
        None,
        description="Refuse at completion what PyPI's upload would refuse (docs/preview.md), "
        "so that it fails while staged; default: on for kind = warehouse only.",
    )

    @property
    def checks_like_pypi(self) -> bool:
        return self.kind == "warehouse" if self.index_checks is None else self.index_checks

    @field_validator("simple_url")
    @classmethod
    def _simple_url_is_a_folder(cls, value: str) -> str:
        return value.rstrip("/") + "/"


class SessionSettings(Section):
    lifetime: PositiveSeconds = 7 * DAY
    max_lifetime: PositiveSeconds = Field(
        30 * DAY, description="Extensions never push expires-at beyond creation + this."
    )
    retention: PositiveSeconds = Field(
        7 * DAY, description="How long a published/canceled session keeps answering its status."
    )
    sweep_interval: PositiveSeconds = 60
    max_open_per_principal: int = Field(
        100, gt=0, description="Sessions one principal may hold open at once; one more is 429."
    )
    quota_max_age: float = Field(
        5,
        ge=0,
        description="Seconds a count of a principal's open sessions, listed for a create, "
        "serves its next creates on this replica (with the sessions the replica opened since); "
        "a create that would reach the cap always counts afresh. The cap may be overshot by "
        "the sessions opened on other replicas within this time; 0 = only the creates arriving "
        "while a count is being listed share it.",
    )


class UploadSettings(Section):
    max_file_size: int = Field(1024 * MiB, gt=0)
    max_json_body: int = Field(64 * 1024, gt=0)
    max_attestations_body: int = Field(1 * MiB, gt=0)
    max_metadata_size: int = Field(1 * MiB, gt=0)
    max_files_per_session: int = Field(1000, gt=0)
    defer_validation_above: int = Field(
        256 * MiB, ge=0, description="Completing a larger file answers 202 and validates later."
    )
    retry_after: PositiveSeconds = 1
    mechanisms: list[Mechanism] = Field(
        default_factory=lambda: list(DEFAULT_MECHANISMS),
        description="Offered in this (server-preferred) order; http-post-bytes is required. "
        "Add the S3 presigned mechanism only when clients can reach s3.endpoint_url.",
    )
    presign_seconds: PositiveSeconds = Field(
        3600, description="Lifetime of presigned part URLs (renewable through parts_url)."
    )

    @field_validator("mechanisms")
    @classmethod
    def _http_post_bytes_is_required(cls, value: list[str]) -> list[str]:
        if HTTP_POST_BYTES not in value:
            raise ValueError("http-post-bytes is required by PEP 694 and must be offered")
        if len(set(value)) != len(value):
            raise ValueError("each mechanism at most once")
        return value


class PublishSettings(Section):
    sync_wait: float = Field(
        5.0, ge=0, description="A publish finished within this many seconds answers 201."
    )
    lease: PositiveSeconds = Field(
        60, description="A publish whose worker stops renewing this long is resumed elsewhere."
    )
    retries: int = Field(4, ge=0, description="Attempts per file when the index fails (5xx).")
    parallel: int = Field(
        1,
        ge=1,
        description="Wheels uploaded to the index at once (at most backend.max_connections); "
        "the sdist always goes last, alone.",
    )


class StageSettings(Section):
    redirect_downloads: bool = Field(
        False, description="Answer file downloads with a presigned S3 URL instead of the bytes."
    )
    presign_seconds: PositiveSeconds = 300


class ProxySettings(OutboundSettings):
    """The read proxy; its TLS and proxy keys are for ``upstream`` (when unset, the read
    proxy talks to the backing index exactly as ``[backend]`` says)."""

    legacy_path: str = Field("/legacy/", description="Where legacy (twine) uploads are accepted.")
    legacy_at_root: bool = Field(
        False, description="Also accept legacy uploads at / (pypiserver-style clients)."
    )
    read_proxy: bool = Field(False, description="Proxy GET/HEAD traffic to the backing index.")
    read_prefixes: list[str] = Field(
        default_factory=lambda: ["/simple/", "/packages/", "/pypi/"],
        description="Path prefixes the read proxy forwards; anything else is 404.",
    )
    upstream: str | None = Field(
        None, description="The index's base URL for reads; default: the origin of simple_url."
    )
    page_max_age: float = Field(
        1.0,
        ge=0,
        description="Seconds a simple page the index confirmed is served without asking it "
        "again (0: revalidate on every request; publishes through this replica always "
        "revalidate; docs/reads.md).",
    )
    max_form_fields_bytes: int = Field(1024 * 1024, gt=0)
    legacy_uploads: Literal["pass-through", "staged"] = Field(
        "pass-through",
        description="staged: every legacy upload goes into a publishing session (R-W6), so no "
        "client can bypass staging; pass-through: only those marked staged or sent to the "
        "staging URL ({legacy_path}+stage/) do.",
    )

    @field_validator("legacy_path")
    @classmethod
    def _slashes(cls, value: str) -> str:
        return "/" + value.strip("/") + "/"


class PrincipalSettings(Section):
    name: str = Field(min_length=1)
    password_hash: str | None = Field(None, description="From `upload-gateway hash-password`.")
    token_hash: str | None = Field(None, description="From `upload-gateway hash-password`.")
    projects: list[str] = Field(default_factory=lambda: ["*"])
    audit: bool = Field(False, description="May read the audit journal (GET {api_root}audit).")
    yank: list[str] = Field(
        default_factory=list,
        description="Projects (globs) whose releases it may yank and unyank (PEP 592).",
    )
    approve: list[str] = Field(
        default_factory=list, description="Projects whose releases it may approve (R-W11)."
    )

    @field_validator("password_hash", "token_hash")
    @classmethod
    def _is_a_hash(cls, value: str | None) -> str | None:
        if value is not None and not is_hash(value):
            raise ValueError("must come from `upload-gateway hash-password`, not a plain secret")
        return value


class PassThroughSettings(Section):
    enabled: bool = False
    projects: list[str] = Field(
        default_factory=lambda: ["*"],
        description="Projects pass-through callers may use; the index itself decides the rest.",
    )


class OidcIssuerSettings(Section):
    issuer: str = Field(
        description="The `iss` claim, e.g. https://token.actions.githubusercontent.com"
    )
    audience: str = Field(description="The `aud` the token must be minted for.")
    jwks_url: str | None = Field(
        None, description="Defaults to the issuer's OpenID discovery document's jwks_uri."
    )


class TrustPolicySettings(Section):
    issuer: str
    claims: dict[str, str] = Field(
        description='Claim → glob every token must match, e.g. repository = "acme/*".'
    )
    projects: list[str]

    @field_validator("claims")
    @classmethod
    def _not_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("a trust policy must constrain at least one claim")
        return value


class OidcSettings(Section):
    issuers: list[OidcIssuerSettings] = Field(default_factory=list)
    policies: list[TrustPolicySettings] = Field(default_factory=list)
    leeway: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    jwks_cache_seconds: PositiveSeconds = 3600


class AuthSettings(Section):
    realm: str = "upload-gateway"
    chain: list[AuthenticatorName] = Field(
        default_factory=lambda: list(DEFAULT_CHAIN),
        description="Order in which enabled authenticators are asked.",
    )
    principals: list[PrincipalSettings] = Field(default_factory=list)
    cache_seconds: int = Field(60, ge=0, description="How long a verified credential is trusted.")
    passthrough: PassThroughSettings = PassThroughSettings()
    oidc: OidcSettings = OidcSettings()


class AuditSettings(Section):
    enabled: bool = Field(
        True, description="Record every release, session change and refusal in S3 (docs/audit.md)."
    )
    bucket: str | None = Field(
        None, description="Write events to this bucket (under s3.prefix) instead of s3.bucket."
    )
    retention_days: int = Field(
        400, ge=0, description="Days of events kept; older days are deleted by the sweep. 0: all."
    )


class PublisherSettings(Section):
    """A PEP 740 publisher a project's attestations must come from (pylock's
    ``attestation-identities`` shape). ``environment`` is not in the signing certificate: it
    is checked against an OIDC trusted-publishing token's claims only (docs/policy.md)."""

    kind: Literal["GitHub", "GitLab", "Google"]
    repository: str | None = Field(None, description="owner/name (GitHub, GitLab).")
    workflow: str | None = Field(
        None, description="GitHub: the workflow's filename; GitLab: its path in the repository."
    )
    environment: str | None = None
    email: str | None = Field(None, description="Google: the service account's address.")

    @model_validator(mode="after")
    def _names_an_identity(self) -> PublisherSettings:
        needed = ("email",) if self.kind == "Google" else ("repository", "workflow")
        missing = [key for key in needed if not getattr(self, key)]
        if missing:
            raise ValueError(f"a {self.kind} publisher needs {' and '.join(missing)}")
        return self


class ProjectPolicySettings(Section):
    match: str = Field(min_length=1, description='A project glob, e.g. "acme-*".')
    require_attestations: bool = False
    publishers: list[PublisherSettings] = Field(
        default_factory=list, description="Attestations must name one of these; [] = any."
    )
    approvals: int = Field(
        0, ge=0, description="Distinct approvers, none the session's creator, before publish."
    )
    cancel_requires: Literal["uploader", "approver"] = Field(
        "uploader", description="approver: only a principal who may approve may cancel."
    )
    review: list[str] = Field(
        default_factory=list,
        description='A command run on every completed file, e.g. ["clamdscan", "{file}"]: '
        "exit 0 passes; [] = no review.",
    )
    auto_publish: Literal["never", "when-gates-pass"] = Field(
        "never",
        description="when-gates-pass: publish a session staged legacy uploads created once "
        "every gate passed and no file arrived for auto_publish_quiet seconds.",
    )
    auto_publish_quiet: PositiveSeconds = Field(
        30, description="Seconds without a new file before an auto-publish."
    )

    @field_validator("review")
    @classmethod
    def _review_is_a_command(cls, review: list[str]) -> list[str]:
        if review and not review[0].strip():
            raise ValueError("the review command's first element names the program")
        return review


class PolicySettings(Section):
    """Release gates (R-W11, docs/policy.md)."""

    trusted_root: ReadableFile | None = Field(
        None,
        description="A Sigstore trusted_root.json to verify against instead of the shipped one.",
    )
    online: bool = Field(
        False, description="Refresh Sigstore's trust root over the network (TUF) at start."
    )
    projects: list[ProjectPolicySettings] = Field(default_factory=list)
    review_concurrency: int = Field(
        2, gt=0, description="Review commands run at once, per process."
    )
    review_timeout: PositiveSeconds = Field(
        300, description="A review command still running after this is killed and fails."
    )
    review_output_limit: int = Field(
        16384, gt=0, description="Bytes of a review command's output kept as its finding."
    )


class LoggingSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_format: bool = Field(True, alias="json")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid"
    )

    server: ServerSettings = ServerSettings()
    s3: S3Settings
    backend: BackendSettings
    sessions: SessionSettings = SessionSettings()
    uploads: UploadSettings = UploadSettings()
    publish: PublishSettings = PublishSettings()
    stage: StageSettings = StageSettings()
    proxy: ProxySettings = ProxySettings()
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()
    policy: PolicySettings = PolicySettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment overrides them.
        return (env_settings, init_settings)


class ConfigurationError(Exception):
    """The configuration is unusable; the message names every offending key."""


def load_settings(path: Path | None = None, **overrides: object) -> Settings:
    # Anything TOML holds: the models validate it.
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigurationError(f"cannot read configuration file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"{path} is not valid TOML: {exc}") from exc
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"  {key}: {error['msg']}")
    return "\n".join(lines)
