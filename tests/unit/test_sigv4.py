"""The small-object signer (store/sigv4.py) against botocore's S3SigV4Auth, header for header."""

from __future__ import annotations

import datetime
import itertools
from urllib.parse import quote

import botocore.auth
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import NoCredentialsError

from gateway.store.sigv4 import SigV4

NOW = datetime.datetime(2026, 12, 6, 23, 59, 58)
KEYS = ReadOnlyCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", None)
SESSION = ReadOnlyCredentials("ASIAEXAMPLE", "temporary/secret+key", "FwoGZXIvYXdzE//token==")
ENDPOINTS = (
    "http://127.0.0.1:8333",
    "https://s3.example.com",
    "http://S3.Example.COM:80",
    "https://s3.example.com:443",
    "https://s3.example.com:8443",
    "http://[::1]:9000",
)
ODD_KEYS = (
    "records/sessions/abc.json",
    "with space/a b.json",
    "plus+sign.json",
    "~tilde/x~y",
    "100%/per%25cent",
    "ünïcode/ключ/鍵.json",
    "k=v&w=x?y#z",
)
HEADER_SETS: tuple[dict[str, str], ...] = (
    {},
    {"Content-Type": "application/json"},
    {"If-Match": '"9bb58f26192e4ba00f01e2e7b136bbd8"', "Content-Type": "application/json"},
    {"If-None-Match": "*"},
    {"Content-Type": "  text/plain;   charset=utf-8 ", "User-Agent": "not signed"},
)


def object_url(endpoint: str, key: str, bucket: str = "records-bucket") -> str:
    # As SmallObjects._send builds it.
    return f"{endpoint}/{quote(bucket, safe='')}/{quote(key, safe='/~')}"


def listing_url(endpoint: str, query: dict[str, str]) -> str:
    # As SmallObjects.keys encodes its query.
    encoded = "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    return f"{object_url(endpoint, '')}?{encoded}"


def requests() -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    """(method, url, body, headers) for every endpoint, key and header set."""
    made: list[tuple[str, str, bytes | None, dict[str, str]]] = []
    for endpoint, key in itertools.product(ENDPOINTS, ODD_KEYS):
        url = object_url(endpoint, key)
        made.append(("GET", url, None, {}))
        made.append(("DELETE", url, None, {"If-Match": '"abc"'}))
        for headers, body in itertools.product(HEADER_SETS, (b"", b'{"n": 1}' * 200)):
            made.append(("PUT", url, body, headers))
        query = {"list-type": "2", "prefix": key, "encoding-type": "url"}
        made.append(("GET", listing_url(endpoint, query), None, {}))
        query.update({"delimiter": "/", "continuation-token": "1/+ab=="})
        made.append(("GET", listing_url(endpoint, query), None, {}))
        # Pairs out of order (and a repeated name): signed sorted by name, then value.
        unsorted = "prefix=b%20c&list-type=2&prefix=a&encoding-type=url&max-keys"
        made.append(("GET", f"{object_url(endpoint, '')}?{unsorted}", None, {}))
    return made


def botocore_headers(
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    credentials: ReadOnlyCredentials,
) -> list[tuple[str, str]]:
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    S3SigV4Auth(credentials, "s3", "eu-west-3").add_auth(request)
    return list(request.headers.items())


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore's clock stopped at NOW (it reads it through botocore.auth)."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, **__: NOW)


@pytest.mark.parametrize("credentials", [KEYS, SESSION], ids=["keys", "session-token"])
def test_headers_are_botocores(frozen: None, credentials: ReadOnlyCredentials) -> None:
    signer = SigV4("eu-west-3")
    cases = requests()
    for method, url, body, headers in cases:
        expected = botocore_headers(method, url, body, headers, credentials)
        signed = signer.sign(method, url, headers, body, credentials, NOW)
        assert list(signed.items()) == expected, (method, url, body, headers)
    assert len(cases) > 500


def test_aware_time_is_signed_as_utc(frozen: None) -> None:
    paris = datetime.timezone(datetime.timedelta(hours=1))
    url = object_url(ENDPOINTS[0], ODD_KEYS[1])
    signed = SigV4("eu-west-3").sign(
        "GET", url, {}, None, KEYS, NOW.replace(tzinfo=datetime.UTC).astimezone(paris)
    )
    assert list(signed.items()) == botocore_headers("GET", url, None, {}, KEYS)


def test_signing_key_is_kept_per_day_and_rederived_for_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = SigV4("eu-west-3")
    assert signer.signing_key(KEYS.secret_key, "20261206") is signer.signing_key(
        KEYS.secret_key, "20261206"
    )
    assert signer.signing_key(KEYS.secret_key, "20261207") != signer.signing_key(
        KEYS.secret_key, "20261206"
    )
    assert signer.signing_key(SESSION.secret_key, "20261206") != signer.signing_key(
        KEYS.secret_key, "20261206"
    )
    # Across midnight and back, each signature is the one botocore makes at that time.
    url = object_url(ENDPOINTS[1], ODD_KEYS[0])
    for now in (NOW, NOW + datetime.timedelta(seconds=3), NOW):
        monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *_, at=now, **__: at)
        expected = botocore_headers("PUT", url, b"{}", {"If-None-Match": "*"}, KEYS)
        signed = signer.sign("PUT", url, {"If-None-Match": "*"}, b"{}", KEYS, now)
        assert list(signed.items()) == expected


def test_keys_without_a_secret_are_no_credentials() -> None:
    with pytest.raises(NoCredentialsError):
        SigV4("eu-west-3").sign(
            "GET", object_url(ENDPOINTS[0], "k"), {}, None, KEYS._replace(secret_key=""), NOW
        )


def test_headers_the_signer_sets_are_refused() -> None:
    with pytest.raises(ValueError, match="X-Amz-Date"):
        SigV4("eu-west-3").sign(
            "GET", object_url(ENDPOINTS[0], "k"), {"X-Amz-Date": "x"}, None, KEYS, NOW
        )
