"""The digests of an upload's bytes, computed as they pass."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Protocol

# Always computed, whatever the client declared: sha256 names the file in the simple index
# and the legacy form's `sha256_digest`. Nothing else on the hot path: every further algorithm
# costs CPU per byte, and a legacy index computes its own blake2b when the form omits it.
ALWAYS = ("sha256",)
# The legacy form's `blake2_256_digest` (twine sends it): blake2b with a 32-byte digest, which
# hashlib has no name for.
BLAKE2B_256 = "blake2b_256"


class _Hasher(Protocol):
    def update(self, data: bytes | bytearray | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def _hasher(algorithm: str) -> _Hasher:
    if algorithm == BLAKE2B_256:
        return hashlib.blake2b(digest_size=32)
    return hashlib.new(algorithm)


class Digests:
    """The digests an upload gets: the always-computed ones plus those the client declared."""

    def __init__(self, algorithms: Iterable[str], always: Iterable[str] = ALWAYS):
        self._hashers = {name: _hasher(name) for name in {*always, *algorithms}}

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}
