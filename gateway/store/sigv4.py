"""AWS Signature Version 4 for the small-object requests (store/objects.py).

botocore's ``S3SigV4Auth.add_auth`` costs 92-141 µs of CPU per request, 14 % of the gateway's
CPU in a py-spy profile of a 201-file release (about 19 record requests per file): it builds
email.message headers, parses the URL twice and derives the signing key with four HMACs on
every request. This signs the same requests with the same result, byte for byte
(tests/unit/test_sigv4.py compares it with botocore's signer), doing only what the
specification asks: the canonical request, its hash, and one HMAC with a signing key derived
once a day, for 11-19 µs (tests/benchmarks/botocore_settings.py, ``signing:``).

What botocore does for these requests, and so this does:

- The payload hash is the sha256 of the body (of no body for ``GET``/``DELETE``), over HTTP
  and HTTPS alike. botocore sends ``UNSIGNED-PAYLOAD`` over HTTPS only when the request's
  context carries the client's ``payload_signing_enabled=False`` (``s3.client_config``, for
  the bytes of uploads) or a streamed body with a checksum; the requests SmallObjects signed
  carried no context, so their small bodies were always hashed, and still are.
- The path is signed as the URL spells it (S3's paths are not normalised or encoded again);
  the query's ``name=value`` pairs are sorted as they are spelt, already encoded.
- Every header the caller gives is signed except those botocore leaves out (hop-by-hop and
  tracing headers, ``User-Agent``), plus ``host`` (from the URL: lowercased, without a
  default port), ``x-amz-date``, ``x-amz-content-sha256`` and ``x-amz-security-token``; a
  value's runs of whitespace are signed as one space.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import lru_cache
from hashlib import sha256
from urllib.parse import urlsplit

from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import NoCredentialsError

EMPTY_SHA256 = sha256(b"").hexdigest()
_ALGORITHM = "AWS4-HMAC-SHA256"
_STAMP = "%Y%m%dT%H%M%SZ"
# botocore's SIGNED_HEADERS_BLACKLIST: proxies may change or drop these on the way.
_NOT_SIGNED = frozenset(
    {
        "baggage",
        "connection",
        "expect",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "traceparent",
        "tracestate",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "user-agent",
        "x-amzn-trace-id",
    }
)
# Set here; a caller's own would contradict the signature (botocore would replace them).
_SET_HERE = frozenset(
    {"authorization", "date", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
)
# Signing keys kept: one per secret and day, so a handful covers key rotation and midnight.
_KEYS_KEPT = 8


class SigV4:
    """Signs requests to one AWS ``service`` in one ``region``."""

    def __init__(self, region: str, service: str = "s3"):
        self.region = region
        self.service = service
        self._keys: dict[tuple[str, str], bytes] = {}

    def signing_key(self, secret_key: str, date: str) -> bytes:
        """The key for ``date`` (``YYYYMMDD``), derived once and then kept: deriving it is four
        HMACs, a third of what botocore's signer spent per request."""
        found = self._keys.get((secret_key, date))
        if found is None:
            if len(self._keys) >= _KEYS_KEPT:
                self._keys.clear()
            found = _hmac(f"AWS4{secret_key}".encode(), date)
            for part in (self.region, self.service, "aws4_request"):
                found = _hmac(found, part)
            self._keys[(secret_key, date)] = found
        return found

    def sign(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        credentials: ReadOnlyCredentials,
        now: datetime,
    ) -> dict[str, str]:
        """``headers`` with ``X-Amz-Date``, ``X-Amz-Security-Token`` (if the credentials have a
        token), ``X-Amz-Content-SHA256`` and ``Authorization`` added, for a request sent at
        ``now`` (UTC if naive) to ``url`` (already percent-encoded, as it is sent)."""
        if not (credentials.access_key and credentials.secret_key):
            raise NoCredentialsError()
        stamp = (now.astimezone(UTC) if now.tzinfo else now).strftime(_STAMP)
        added = {"X-Amz-Date": stamp}
        if credentials.token:
            added["X-Amz-Security-Token"] = credentials.token
        payload = sha256(body).hexdigest() if body else EMPTY_SHA256
        added["X-Amz-Content-SHA256"] = payload
        signed, canonical_request = _canonical_request(method, url, headers, added, payload)
        scope = f"{stamp[:8]}/{self.region}/{self.service}/aws4_request"
        to_sign = f"{_ALGORITHM}\n{stamp}\n{scope}\n{_sha256_hex(canonical_request)}"
        key = self.signing_key(credentials.secret_key, stamp[:8])
        signature = hmac.new(key, to_sign.encode(), sha256).hexdigest()
        added["Authorization"] = (
            f"{_ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        return {**headers, **added}


def _canonical_request(
    method: str, url: str, headers: Mapping[str, str], added: Mapping[str, str], payload: str
) -> tuple[str, str]:
    """The signed header names and the canonical request, as the specification spells it."""
    parts = urlsplit(url)
    signed, canonical_headers = _canonical_headers(headers, added, parts.scheme, parts.netloc)
    path = parts.path or "/"  # the specification's path of an empty path
    query = _canonical_query(parts.query)
    lines = (method.upper(), path, query, canonical_headers, "", signed, payload)
    return signed, "\n".join(lines)


def _canonical_headers(
    headers: Mapping[str, str], added: Mapping[str, str], scheme: str, netloc: str
) -> tuple[str, str]:
    """The signed header names (``a;b;c``) and the canonical headers (``a:1\\nb:2...``)."""
    values: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in _SET_HERE:
            raise ValueError(f"{name} is set by the signer")
        if lowered not in _NOT_SIGNED:
            _add(values, lowered, value)
    for name, value in added.items():
        _add(values, name.lower(), value)
    values.setdefault("host", _host(scheme, netloc))
    names = sorted(values)
    return ";".join(names), "\n".join(f"{name}:{values[name]}" for name in names)


def _add(values: dict[str, str], name: str, value: str) -> None:
    # Repeated names (differing only in case) are signed as one, their values comma-joined.
    trimmed = " ".join(value.split())
    values[name] = f"{values[name]},{trimmed}" if name in values else trimmed


def _canonical_query(query: str) -> str:
    """The query's pairs sorted by name, then value; SmallObjects has encoded them already."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{name}={value}" for name, value in pairs)


@lru_cache(maxsize=16)
def _host(scheme: str, netloc: str) -> str:
    """The ``host`` header as sent: lowercased, without credentials or the scheme's default
    port, an IPv6 address in brackets. One endpoint per store, so this is worked out once."""
    parts = urlsplit(f"{scheme}://{netloc}")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{parts.port}"
    return host


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), sha256).digest()


def _sha256_hex(text: str) -> str:
    return sha256(text.encode()).hexdigest()
