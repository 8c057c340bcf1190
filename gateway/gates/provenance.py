"""PEP 740 provenance of published files (R-W11): Warehouse's ``Provenance`` object, kept in
S3 by this store alone under ``provenance/{project}/{version}/{filename}.json`` and served at
Warehouse's path ``/integrity/{project}/{version}/{filename}/provenance``.

The publish gate writes it for each file with verified attestations as the release goes to
publish, and removes a stale one for a file without (found by one listing of the version's
provenance, not a request per file), so it always describes the bytes last
published under that filename through the gateway. The read path's pages link it through
:meth:`ProvenanceStore.url_for`. A staged file's provenance is built on request from its
stored attestations (:meth:`ProvenanceStore.staged`), served beside it on the stage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from urllib.parse import quote

from packaging.utils import canonicalize_name
from pypi_attestations import AttestationBundle, Provenance

from gateway.domain.records import FileUpload, PublishingSession
from gateway.gates.attestations import AttestationRefused, AttestationVerifier, Verified
from gateway.gates.publishers import describe
from gateway.store import keys
from gateway.store.blobs import BlobStore

INTEGRITY_V1_JSON = "application/vnd.pypi.integrity.v1+json"


def provenance_key(project: str, version: str, filename: str) -> str:
    return f"provenance/{canonicalize_name(project)}/{version}/{filename}.json"


def provenance_path(project: str, version: str, filename: str) -> str:
    """Warehouse's integrity path (the gateway's own URL is its public base plus this)."""
    parts = (canonicalize_name(project), version, filename)
    return "/integrity/{}/{}/{}/provenance".format(*(quote(p, safe="") for p in parts))


def provenance_document(verified: list[Verified]) -> bytes:
    """One attestation bundle per publisher, in the order first seen."""
    bundles: dict[str, AttestationBundle] = {}
    for one in verified:
        name = describe(one.publisher)
        if name not in bundles:
            bundles[name] = AttestationBundle(publisher=one.publisher, attestations=[])
        bundles[name].attestations.append(one.attestation)
    provenance = Provenance(attestation_bundles=list(bundles.values()))
    return provenance.model_dump_json(by_alias=True).encode()


class ProvenanceStore:
    def __init__(
        self,
        blobs: BlobStore,
        public_url: Callable[[str], str],
        verifier: AttestationVerifier,
    ):
        self._blobs = blobs
        self._public_url = public_url  # a path → its absolute URL under the public base
        self._verifier = verifier

    async def keep(
        self, project: str, version: str, filename: str, verified: list[Verified]
    ) -> None:
        key = provenance_key(project, version, filename)
        await self._blobs.put(key, provenance_document(verified), content_type=INTEGRITY_V1_JSON)

    async def forget(self, project: str, version: str, filename: str) -> None:
        await self._blobs.delete(provenance_key(project, version, filename))

    async def kept(self, project: str, version: str) -> set[str]:
        """The filenames of ``version`` that have a provenance kept: one listing, so that a
        publish removes stale ones without a request per file."""
        prefix = provenance_key(project, version, "").removesuffix(".json")
        return {
            key.removeprefix(prefix).removesuffix(".json") for key in await self._blobs.keys(prefix)
        }

    async def get(self, project: str, version: str, filename: str) -> bytes | None:
        return await self._blobs.get(provenance_key(project, version, filename))

    async def links(self, project: str) -> dict[str, str]:
        """Filename -> provenance URL of every file of ``project`` the gateway keeps one for:
        what the read path's pages link as ``provenance`` / ``data-provenance`` (one listing
        per page rendered)."""
        prefix = provenance_key(project, "", "").removesuffix("//.json")
        found = {}
        for key in await self._blobs.keys(prefix + "/"):
            version, _, name = key.removeprefix(prefix + "/").partition("/")
            filename = name.removesuffix(".json")
            found[filename] = self._public_url(provenance_path(project, version, filename))
        return found

    async def staged(self, session: PublishingSession, upload: FileUpload) -> bytes | None:
        """A staged file's provenance, from its attestations verified again now (offline,
        a few ms): nothing is kept for a file that may still be replaced."""
        verified = await self._verify_staged(session, upload)
        return provenance_document(verified) if verified else None

    async def staged_publishers(self, session: PublishingSession, upload: FileUpload) -> str | None:
        """Who the staged file's verified attestations name (for the preview page)."""
        verified = await self._verify_staged(session, upload)
        return ", ".join(dict.fromkeys(describe(v.publisher) for v in verified)) or None

    async def _verify_staged(
        self, session: PublishingSession, upload: FileUpload
    ) -> list[Verified]:
        if not upload.has_attestations or upload.committed is None:
            return []
        stored = await self._blobs.get(keys.attestations(session.id, upload.id))
        if stored is None:
            return []
        sha256 = upload.committed.digests["sha256"]
        try:
            return await asyncio.to_thread(
                self._verifier.verify, json.loads(stored), upload.filename, sha256
            )
        except AttestationRefused:
            return []  # verified when attached; refused now only if the trust root changed
