"""The audit journal's objects: written once each (``If-None-Match: *``), never rewritten.

Keys (``store/keys.py``) are ``audit/{yyyy-mm-dd}/all/{id}.json`` and
``audit/{yyyy-mm-dd}/projects/{project}/{id}.json``. An id starts with the time *remaining*
in its UTC day, in microseconds, so that S3's ascending listing yields a day's events newest
first and a page can continue with ``StartAfter``; a random (or, for an event that several
replicas may record, a derived) suffix keeps ids unique.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.store import keys
from gateway.store.blobs import BlobStore
from gateway.store.objects import SmallObjects
from gateway.store.record_store import RecordExists, RecordStore
from gateway.store.s3 import S3Client

_DAY_US = 86_400_000_000
EVENT_ID = re.compile(r"^\d{11}-[0-9a-f]{8}$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def event_id(moment: datetime, seed: str | None = None) -> str:
    """An id that sorts newest first within ``moment``'s day; the same for the same
    ``seed`` and moment, so replicas recording one occurrence write one object."""
    moment = moment.astimezone(UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (moment - midnight) // timedelta(microseconds=1)
    suffix = hashlib.sha256(seed.encode()).hexdigest()[:8] if seed else secrets.token_hex(4)
    return f"{_DAY_US - elapsed:011d}-{suffix}"


def moment_of(day: str, eid: str) -> datetime:
    midnight = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    return midnight + timedelta(microseconds=_DAY_US - int(eid[:11]))


def day_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


class AuditStore:
    def __init__(
        self, client: S3Client, objects: SmallObjects, bucket: str, prefix: str, timeout: int
    ):
        self._client = client
        self._bucket = bucket
        self._prefix = prefix
        self._records = RecordStore(objects, bucket, prefix)
        self._blobs = BlobStore(client, bucket, prefix, timeout)

    async def append(self, key: str, data: dict[str, Any]) -> None:
        """Write an event; one already there under this key is the same event (a replica or
        a retry recorded it first)."""
        with contextlib.suppress(RecordExists):
            await self._records.create(key, data)

    async def get(self, key: str) -> dict[str, Any] | None:
        stored = await self._records.get(key)
        return None if stored is None else stored.data

    async def days(self) -> list[str]:
        """Every day that has events, oldest first (one short listing: a key per day)."""
        paginator = self._client.get_paginator("list_objects_v2")
        found = []
        async for page in paginator.paginate(
            Bucket=self._bucket, Prefix=self._prefix + keys.AUDIT, Delimiter="/"
        ):
            for common in page.get("CommonPrefixes", []):
                day = common["Prefix"][len(self._prefix + keys.AUDIT) :].rstrip("/")
                if DAY.match(day):
                    found.append(day)
        return sorted(found)

    async def event_ids(self, scope: str, after: str | None = None) -> AsyncIterator[str]:
        """The ids under ``scope`` (a day's view), newest first, from just after ``after``."""
        paginator = self._client.get_paginator("list_objects_v2")
        options = {"StartAfter": self._prefix + scope + after + ".json"} if after else {}
        async for page in paginator.paginate(
            Bucket=self._bucket, Prefix=self._prefix + scope, Delimiter="/", **options
        ):
            for item in page.get("Contents", []):
                name = item["Key"][len(self._prefix + scope) :].removesuffix(".json")
                if EVENT_ID.match(name):
                    yield name

    async def delete_day(self, day: str) -> None:
        await self._blobs.purge(keys.audit_day(day))
