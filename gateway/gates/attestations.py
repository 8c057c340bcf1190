"""PEP 740 attestations verified against the file they are attached to (R-W11).

Each attestation's Sigstore bundle is checked against a trust root (the one sigstore ships,
offline, unless the operator pins a file or opts in to a TUF refresh), then its in-toto
statement against the file: exactly one subject, named as the file, with the file's sha256,
and a PyPI predicate type. The publisher is read from the verified signing certificate, so a
policy can then say which publishers a project accepts (:mod:`gateway.gates.policy`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sigstore.errors
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)
from pydantic import ValidationError
from pypi_attestations import Attestation, AttestationType, ConversionError
from sigstore.models import TrustedRoot
from sigstore.verify import Verifier

from gateway.gates.publishers import Publisher, PublisherCapture
from gateway.settings import PolicySettings

IN_TOTO = "application/vnd.in-toto+json"
PREDICATE_TYPES = frozenset(kind.value for kind in AttestationType)


class Reason(StrEnum):
    """Why an attestation was refused; the problem's ``errors[].message`` starts with it."""

    MALFORMED = "malformed"
    SIGNATURE = "signature"
    PUBLISHER = "publisher"
    SUBJECT_NAME = "subject name"
    DIGEST = "digest"
    PREDICATE_TYPE = "predicate type"
    TOKEN_IDENTITY = "token identity"


class AttestationRefused(Exception):
    def __init__(self, index: int, reason: Reason, message: str):
        super().__init__(f"attestation {index}: {reason.value}: {message}")
        self.index = index
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Verified:
    """One attestation that holds for its file, with the publisher its certificate names."""

    attestation: Attestation
    publisher: Publisher
    predicate_type: str


def sigstore_verifier(settings: PolicySettings) -> Verifier:
    """The pinned trust root, else sigstore's shipped one (no network unless ``online``)."""
    if settings.trusted_root is not None:
        return Verifier(trusted_root=TrustedRoot.from_file(settings.trusted_root))
    return Verifier.production(offline=not settings.online)


class AttestationVerifier:
    def __init__(self, verifier: Verifier):
        self._verifier = verifier

    def verify(self, documents: list[Any], filename: str, sha256: str) -> list[Verified]:
        """Every attestation in ``documents`` verified for the file, or the first refusal.
        CPU-bound (a few ms each): callers run it off the event loop."""
        return [
            self._verify_one(index, document, filename, sha256)
            for index, document in enumerate(documents)
        ]

    def _verify_one(self, index: int, document: Any, filename: str, sha256: str) -> Verified:
        try:
            attestation = Attestation.model_validate(document)
            bundle = attestation.to_bundle()
        except (ValidationError, ConversionError, ValueError) as exc:
            raise AttestationRefused(index, Reason.MALFORMED, _first_line(exc)) from None
        capture = PublisherCapture()
        try:
            kind, payload = self._verifier.verify_dsse(bundle, capture)
        except sigstore.errors.VerificationError as exc:
            raise AttestationRefused(index, Reason.SIGNATURE, _first_line(exc)) from None
        statement = _statement(index, kind, payload)
        predicate_type = _check_statement(index, statement, filename, sha256)
        publisher = capture.publisher
        if publisher is None:
            raise AttestationRefused(
                index,
                Reason.PUBLISHER,
                "the signing certificate names no GitHub, GitLab or Google trusted publisher",
            )
        return Verified(attestation, publisher, predicate_type)


def _statement(index: int, kind: str, payload: bytes) -> dict[str, Any]:
    try:
        statement = json.loads(payload) if kind == IN_TOTO else None
    except ValueError:
        statement = None
    if not isinstance(statement, dict):
        raise AttestationRefused(index, Reason.MALFORMED, "the envelope holds no in-toto statement")
    return statement


def _check_statement(index: int, statement: dict[str, Any], filename: str, sha256: str) -> str:
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or len(subjects) != 1 or not isinstance(subjects[0], dict):
        raise AttestationRefused(index, Reason.SUBJECT_NAME, "the statement must have one subject")
    subject = subjects[0]
    name = subject.get("name")
    if not isinstance(name, str) or _identity(name) != _identity(filename):
        raise AttestationRefused(
            index, Reason.SUBJECT_NAME, f"the attestation is for {name!r}, not {filename!r}"
        )
    digests = subject.get("digest")
    if not isinstance(digests, dict) or digests.get("sha256") != sha256:
        raise AttestationRefused(
            index, Reason.DIGEST, f"the attested sha256 is not the file's ({sha256})"
        )
    predicate_type = statement.get("predicateType")
    if predicate_type not in PREDICATE_TYPES:
        raise AttestationRefused(
            index, Reason.PREDICATE_TYPE, f"{predicate_type!r} is not a PyPI attestation type"
        )
    return str(predicate_type)


def _identity(filename: str) -> tuple[object, ...] | None:
    """A distribution filename's parts, normalized: how PyPI compares a subject's name."""
    try:
        if filename.endswith(".whl"):
            return tuple(parse_wheel_filename(filename))
        if filename.endswith(".tar.gz"):
            return tuple(parse_sdist_filename(filename))
    except (InvalidWheelFilename, InvalidSdistFilename):
        pass
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
