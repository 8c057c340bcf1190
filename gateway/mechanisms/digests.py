"""The digests of an upload's bytes, computed as they pass."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

# Always computed, whatever the client declared: sha256 names the file in the simple index
# and the legacy form's `sha256_digest`. Nothing else on the hot path: every further algorithm
# costs CPU per byte, and a legacy index computes its own blake2b when the form omits it.
ALWAYS = ("sha256",)


class Digests:
    """The digests an upload gets: the always-computed ones plus those the client declared."""

    def __init__(self, algorithms: Iterable[str], always: Iterable[str] = ALWAYS):
        self._hashers = {name: hashlib.new(name) for name in {*always, *algorithms}}

    def update(self, data: bytes | bytearray | memoryview) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)

    def hexdigests(self) -> dict[str, str]:
        return {name: hasher.hexdigest() for name, hasher in self._hashers.items()}
