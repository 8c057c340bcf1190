"""The checker: invariants over the whole history once the nemesis has stopped and the sweep
has run (R-W12). Each violation is one sentence; an empty list is a pass."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from gateway.domain.records import PublishingSession
from gateway.protocol.audit import SESSION_PUBLISHED
from gateway.store.s3 import is_not_found
from tests.chaos.workload import Attempt
from tests.cluster import BUCKET, PASSWORD, USER, Cluster
from tests.consistency import check_bucket

SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
LINK = re.compile(r'href="[^"]*/([^/"#]+)#sha256=([0-9a-f]{64})"')


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    files_lost: int = 0
    files_duplicated: int = 0
    files_foreign: int = 0
    sessions_seen: int = 0  # session records when the leases were checked
    objects_seen: int = 0  # objects under the prefix when the bucket was checked

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": not self.violations}


async def check_leases(cluster: Cluster, verdict: Verdict) -> None:
    """Once leases had time to lapse and be taken over, before the retention purges the
    ended sessions: no session is stuck in ``processing`` past its publish lease."""
    async with _s3(cluster) as client:
        sessions, _ = await _sessions(client, cluster.prefix + "/")
    verdict.sessions_seen = len(sessions)
    now = datetime.now(UTC)
    for sid, session in sessions.items():
        lease = session.publish.lease_until if session.publish else None
        if session.status.value == "processing" and lease is not None and lease < now:
            verdict.violations.append(f"session {sid[:8]} stuck in processing since {lease}")


async def check(
    cluster: Cluster, history: list[Attempt], retention: float, verdict: Verdict
) -> Verdict:
    async with aiohttp.ClientSession() as http:
        await _index(http, cluster, history, verdict)
        await _read_path(http, cluster, history, verdict)
        await _failed_say_why(http, cluster, history, verdict)
        await _audit(http, cluster, history, verdict)
    _installs(history, verdict)
    await _bucket(cluster, retention, verdict)
    return verdict


async def _index_files(
    http: aiohttp.ClientSession, index: str, project: str
) -> list[tuple[str, str]]:
    async with http.get(f"{index}/simple/{project}/") as response:
        if response.status == 404:
            return []
        return LINK.findall(await response.text())


async def _index(
    http: aiohttp.ClientSession, cluster: Cluster, history: list[Attempt], verdict: Verdict
) -> None:
    """Every release reported published is on the index with exactly its files (none
    missing, none twice, none foreign), each with its sha256."""
    for project in sorted({a.project for a in history}):
        listed = await _index_files(http, cluster.index_url, project)
        names = Counter(name for name, _ in listed)
        digests = dict(listed)
        for name, count in names.items():
            if count > 1:
                verdict.files_duplicated += count - 1
                verdict.violations.append(f"{name} is listed {count} times on the index")
        for attempt in (a for a in history if a.project == project):
            on_index = {n: d for n, d in digests.items() if f"-{attempt.version}-" in n}
            if attempt.status == "published":
                _same_files(attempt, on_index, verdict)


async def _read_path(
    http: aiohttp.ClientSession, cluster: Cluster, history: list[Attempt], verdict: Verdict
) -> None:
    """The gateway's read path (PEP 691 JSON through the load balancer) lists exactly the
    files the index lists, with the same sha256s (R-W10)."""
    for project in sorted({a.project for a in history}):
        on_index = sorted(await _index_files(http, cluster.index_url, project))
        headers = {"Accept": SIMPLE_JSON}
        async with http.get(f"{cluster.simple_url}{project}/", headers=headers) as response:
            if response.status == 404 and not on_index:
                continue
            if response.status != 200:
                verdict.violations.append(f"read path: {project} answered {response.status}")
                continue
            page = json.loads(await response.read())
        served = sorted((f["filename"], f["hashes"].get("sha256", "")) for f in page["files"])
        if served != on_index:
            verdict.violations.append(
                f"read path: {project} lists {len(served)} files, the index {len(on_index)}, "
                f"differing in {sorted(set(served) ^ set(on_index))[:3]}"
            )


def _installs(history: list[Attempt], verdict: Verdict) -> None:
    """Every pip install, from a stage or through the read path, succeeded; through the read
    path pip got one of the release's own files, with its sha256."""
    for attempt in history:
        what = f"{attempt.project} {attempt.version}"
        if attempt.pip == "failed":
            verdict.violations.append(f"{what}: pip could not install it from its stage")
        read = attempt.read_install
        if read is None:
            continue
        if not read:
            verdict.violations.append(f"{what}: pip could not install it through the read path")
        elif attempt.files.get(read["file"]) != read["sha256"]:
            verdict.violations.append(
                f"{what}: through the read path pip installed {read['file']} "
                f"with sha256 {read['sha256'][:12]}, not one of the release's files"
            )


def _same_files(attempt: Attempt, on_index: dict[str, str], verdict: Verdict) -> None:
    what = f"{attempt.project} {attempt.version}"
    for name, sha256 in attempt.files.items():
        if name not in on_index:
            verdict.files_lost += 1
            verdict.violations.append(f"{what}: published, but {name} is not on the index")
        elif on_index[name] != sha256:
            verdict.violations.append(f"{what}: {name} on the index has another sha256")
    for name in set(on_index) - set(attempt.files):
        verdict.files_foreign += 1
        verdict.violations.append(f"{what}: {name} on the index was never uploaded")


async def _failed_say_why(
    http: aiohttp.ClientSession, cluster: Cluster, history: list[Attempt], verdict: Verdict
) -> None:
    """A release reported failed is absent from the index, or its session is in ``error``
    naming why."""
    for attempt in (a for a in history if a.status != "published"):
        listed = await _index_files(http, cluster.index_url, attempt.project)
        present = [n for n, _ in listed if f"-{attempt.version}-" in n]
        if not present:
            continue
        session = await _get_json(http, attempt.session_url) if attempt.session_url else None
        if not session or session.get("status") != "error" or not session.get("notices"):
            verdict.violations.append(
                f"{attempt.project} {attempt.version}: reported {attempt.status}, yet "
                f"{len(present)} of its files are on the index and its session does not say why"
            )


async def _get_json(http: aiohttp.ClientSession, url: str) -> dict[str, Any] | None:
    authorization = aiohttp.encode_basic_auth(USER, PASSWORD)
    async with http.get(url, headers={"Authorization": authorization}) as response:
        if response.status != 200:
            return None
        document: dict[str, Any] = json.loads(await response.read())
        return document


async def _audit(
    http: aiohttp.ClientSession, cluster: Cluster, history: list[Attempt], verdict: Verdict
) -> None:
    """One ``session.published`` event per published release, none for a failed one."""
    published: Counter[tuple[str, str]] = Counter()
    cursor: str | None = None
    while True:
        url = f"{cluster.api}audit?limit=500" + (f"&cursor={cursor}" if cursor else "")
        page = await _get_json(http, url)
        if page is None:
            verdict.violations.append("the audit journal could not be read")
            return
        for event in page["events"]:
            if event["action"] == SESSION_PUBLISHED and event["outcome"] == "ok":
                published[(event["project"], event["version"])] += 1
        cursor = page.get("next")
        if not cursor:
            break
    for attempt in history:
        count = published[(attempt.project, attempt.version)]
        expected = 1 if attempt.status == "published" else 0
        if count != expected:
            verdict.violations.append(
                f"{attempt.project} {attempt.version} ({attempt.status}): "
                f"{count} audit published events, expected {expected}"
            )


def _s3(cluster: Cluster) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=cluster.seaweed.s3_url,
        region_name="us-east-1",
        aws_access_key_id="cluster",
        aws_secret_access_key="cluster-secret",
    )


async def _bucket(cluster: Cluster, retention: float, verdict: Verdict) -> None:
    """No staged object whose session ended longer ago than the retention (and a sweep);
    the bucket checker finds nothing."""
    prefix = cluster.prefix + "/"
    async with _s3(cluster) as client:
        sessions, data = await _sessions(client, prefix)
        verdict.objects_seen = await _count(client, prefix)
        horizon = datetime.now(UTC) - timedelta(seconds=retention)
        for sid in sorted(data):
            session = sessions.get(sid)
            ended = session.ended_at if session else None
            if session is None or (ended is not None and ended < horizon):
                verdict.violations.append(
                    f"session {sid[:8]}: {data[sid]} staged objects left without a live session"
                )
        for violation in await check_bucket(client, BUCKET, prefix):
            verdict.violations.append(f"bucket checker: {violation}")


async def _sessions(client: Any, prefix: str) -> tuple[dict[str, PublishingSession], Counter[str]]:
    sessions: dict[str, PublishingSession] = {}
    data: Counter[str] = Counter()
    async for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix + "sessions/"
    ):
        for item in page.get("Contents", []):
            rest = item["Key"][len(prefix + "sessions/") :]
            if "/" not in rest and rest.endswith(".json"):
                session = await _session(client, item["Key"])
                if session is not None:
                    sessions[session.id] = session
            elif "/" in rest:  # its data, or its summary entries beside its record
                data[rest.split("/", 1)[0].removesuffix(".shown")] += 1
    return sessions, data


async def _session(client: Any, key: str) -> PublishingSession | None:
    """The session record at ``key``; None when the sweep forgot it since it was listed (its
    retention ran out while the checker read the others: nothing left to check)."""
    try:
        response = await client.get_object(Bucket=BUCKET, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise
    async with response["Body"] as body:
        return PublishingSession.model_validate_json(await body.read())


async def _count(client: Any, prefix: str) -> int:
    count = 0
    async for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix=prefix
    ):
        count += len(page.get("Contents", []))
    return count
