"""Salted, slow hashes for configured passwords and tokens (never stored in the clear).

A leaf: settings check that configured secrets are hashes, auth verifies them against it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

# scrypt parameters: ~16 MiB and tens of milliseconds per check, so verified credentials are
# cached briefly by the authenticator instead of re-hashed on every request.
_N, _R, _P = 2**14, 8, 1
_SCHEME = "scrypt"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_secret(secret: str, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=32)
    return f"{_SCHEME}${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != _SCHEME:
            return False
        digest = hashlib.scrypt(
            secret.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=64 << 20,
            dklen=32,
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest, _unb64(expected))


def is_hash(stored: str) -> bool:
    parts = stored.split("$")
    return len(parts) == 6 and parts[0] == _SCHEME and all(part for part in parts)
