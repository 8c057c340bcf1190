from __future__ import annotations

import pytest

from gateway.auth.principals import Principal, may_upload
from gateway.hashed_secrets import hash_secret, is_hash, verify_secret


def test_secret_round_trip() -> None:
    stored = hash_secret("s3cret", n=2**10)
    assert is_hash(stored)
    assert "s3cret" not in stored
    assert verify_secret("s3cret", stored)
    assert not verify_secret("s3cret!", stored)


def test_hashes_are_salted() -> None:
    assert hash_secret("same", n=2**10) != hash_secret("same", n=2**10)


@pytest.mark.parametrize("stored", ["", "plain", "scrypt$x$8$1$AAAA$BBBB", "bcrypt$1$2$3$4$5"])
def test_garbage_hash_never_verifies(stored: str) -> None:
    assert not verify_secret("anything", stored)


@pytest.mark.parametrize(
    ("patterns", "project", "allowed"),
    [
        (("*",), "anything", True),
        (("bob-*",), "bob-tools", True),
        (("bob-*",), "Bob_Tools", True),  # names compare normalized
        (("bob-*",), "alice", False),
        (("Foo.Bar",), "foo-bar", True),
        ((), "foo", False),
    ],
)
def test_may_upload(patterns: tuple[str, ...], project: str, allowed: bool) -> None:
    principal = Principal("p", "p", patterns)
    assert may_upload(principal, project) is allowed
