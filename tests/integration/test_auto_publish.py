"""Auto-publish (R-W11, python/peps#5070: an index may publish a session created for a legacy
client once review passes): real ``twine upload`` to the staging URL, a real review command,
the release on pypiserver with no second command."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path
from typing import Any

from gateway.devstack import Server
from tests.conftest import ALICE
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.conftest import index_files
from tests.integration.legacy import stage_url
from tests.integration.replicas import start_replica
from tests.integration.test_audit import auditor, by_action, journal
from tests.integration.test_review import scanner
from tests.integration.test_staged_legacy import upload_with

auditor = auditor  # the audit journal's reader, a fixture


async def wait_for_index(pypiserver: Server, project: str, count: int) -> dict[str, str]:
    deadline = time.monotonic() + 60
    while True:
        found = await index_files(pypiserver, project)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_twine_upload_with_auto_publish_and_a_passing_review_ends_on_the_index(
    live_gateway: Any,
    pypiserver: Server,
    principal_settings: list[dict[str, Any]],
    auditor: dict[str, Any],
    project_name: str,
    tmp_path: Path,
) -> None:
    command, log = scanner(tmp_path, pause=0.5)
    policy = {
        "match": project_name,
        "review": command,
        "auto_publish": "when-gates-pass",
        "auto_publish_quiet": 2,
    }
    api = await live_gateway(
        policy={"projects": [policy]}, auth={"principals": [*principal_settings, auditor]}
    )
    dists = [build_wheel(tmp_path, project_name, "1.0"), build_sdist(tmp_path, project_name, "1.0")]
    home = tmp_path / "home"
    code, output = await upload_with(
        "twine", stage_url(api), ALICE.name, ALICE.password, dists, home
    )
    assert code == 0, output
    assert await index_files(pypiserver, project_name) == {}  # staged, reviewed, then quiet
    landed = await wait_for_index(pypiserver, project_name, len(dists))
    assert landed == {d.name: sha256_of(d) for d in dists}
    assert log.read_text().count("done") == len(dists)  # each file was reviewed, and passed
    events = by_action(await journal(api, project=project_name))
    assert len(events["review.passed"]) == len(dists)
    [published] = events["session.auto-published"]
    assert published["detail"] in ("published", "processing")


async def test_a_failing_review_holds_an_auto_publish_back(
    live_gateway: Any, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    from tests.integration.test_review import SIGNATURE

    command, _ = scanner(tmp_path)
    policy = {
        "match": project_name,
        "review": command,
        "auto_publish": "when-gates-pass",
        "auto_publish_quiet": 1,
    }
    api = await live_gateway(policy={"projects": [policy]})
    dists = [build_wheel(tmp_path, project_name, "1.0", payload=SIGNATURE)]
    code, output = await upload_with(
        "twine", stage_url(api), ALICE.name, ALICE.password, dists, tmp_path / "home"
    )
    assert code == 0, output
    await asyncio.sleep(4)  # twice the quiet period and the review's time
    assert await index_files(pypiserver, project_name) == {}


async def test_an_auto_publish_pending_when_its_gateway_is_killed_is_done_by_another_replica(
    seaweedfs: Server,
    pypiserver: Server,
    principal_settings: list[dict[str, Any]],
    project_name: str,
    tmp_path: Path,
) -> None:
    """The timer dies with its gateway; the sweep of a replica on the same bucket, told by the
    due index when the quiet period ends, publishes instead."""
    policy = (
        f"[[policy.projects]]\nmatch = {project_name!r}\n"
        'auto_publish = "when-gates-pass"\nauto_publish_quiet = 3\n'
    )
    prefix = "auto-crash-" + project_name
    dists = [build_wheel(tmp_path, project_name, "1.0")]
    first = start_replica(tmp_path, seaweedfs, pypiserver, prefix, principal_settings, policy)
    try:
        url = f"http://127.0.0.1:{first.port}/legacy/+stage/"
        code, output = await upload_with(
            "twine", url, ALICE.name, ALICE.password, dists, tmp_path / "home"
        )
        assert code == 0, output
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        assert await index_files(pypiserver, project_name) == {}, "published before the crash"
        second = start_replica(tmp_path, seaweedfs, pypiserver, prefix, principal_settings, policy)
        try:
            landed = await wait_for_index(pypiserver, project_name, len(dists))
        finally:
            second.process.terminate()
            second.process.wait(30)
    finally:
        if first.process.poll() is None:
            first.process.kill()
    assert landed == {d.name: sha256_of(d) for d in dists}
