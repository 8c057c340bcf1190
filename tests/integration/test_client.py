"""The ``upload-gateway publish`` / ``session`` CLI, run as a real subprocess against real servers.

The gateway runs in the test's own event loop on a real loopback port, so the CLI is started
with ``asyncio.create_subprocess_exec`` (a blocking ``subprocess.run`` would deadlock it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.api.context import SERVICES
from gateway.app import create_app
from gateway.devstack import Server, free_port
from tests.conftest import BOB, INDEX_PASSWORD, INDEX_USER
from tests.distributions import build_sdist, build_wheel, sha256_of
from tests.integration.cli import Cli, json_lines, on_index, sessions_of
from tests.integration.conftest import Api, pip

MiB = 1 << 20


async def test_publish_uploads_wheel_and_sdist_onto_the_index(
    cli: Cli, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"published")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    code, out, err = await cli.publish("--json", str(wheel), str(sdist))
    assert code == 0, err
    [result] = json_lines(out)
    assert result["status"] == "published"
    assert result["protocol"] == "2"
    assert set(result["files"]) == {wheel.name, sdist.name}
    assert result["files"][wheel.name]["sha256"] == sha256_of(wheel)
    assert on_index(servers_dir, wheel)
    assert on_index(servers_dir, sdist)


async def test_stage_install_from_the_stage_then_publish(
    cli: Cli, live: Api, pypiserver: Server, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"staged bytes")
    code, out, err = await cli.publish("--stage", str(wheel))
    assert code == 0, err
    stage = re.search(r"stage URL: (\S+)", out)
    sid = re.search(r"session ([0-9a-f]{8})", out)
    assert stage, out
    assert sid, out
    assert f"  preview:   {stage.group(1)}+preview/" in out.splitlines()  # issue #20
    assert not on_index(servers_dir, wheel)

    target = tmp_path / "target"
    await pip(
        "install",
        "--index-url",
        pypiserver.url + "/simple/",
        "--extra-index-url",
        stage.group(1),
        "--target",
        str(target),
        f"{project_name}==1.0",
    )
    stem = project_name.replace("-", "_")
    assert (target / stem / "payload.bin").read_bytes() == b"staged bytes"

    code, out, err = await cli.session("publish", sid.group(1))
    assert code == 0, err
    assert f"Published session {sid.group(1)}" in out
    assert ": published" in out
    assert on_index(servers_dir, wheel)
    [session] = await sessions_of(live, project_name)
    assert session.status == "published"


@pytest.mark.parametrize(
    ("options", "sent"),
    [(("--attestations",), True), ((), True), (("--no-attestations",), False)],
    ids=["required", "found-by-default", "skipped"],
)
async def test_attestations_are_uploaded_with_the_file(
    cli: Cli, live: Api, tmp_path: Path, options: tuple[str, ...], sent: bool
) -> None:
    from tests import attestation_assets as assets

    sdist = Path(shutil.copy(assets.SDIST, tmp_path))
    shutil.copy(assets.ASSETS / f"{sdist.name}.publish.attestation", tmp_path)
    # As with ``dist/*``, the attestation file among the inputs is skipped, not uploaded.
    code, _out, err = await cli.publish(
        "--stage", *options, str(sdist), f"{sdist}.publish.attestation"
    )
    assert code == 0, err
    [session] = await sessions_of(live, assets.PROJECT)
    [upload] = await live.client.server.app[SERVICES].session_files.records(session.id)
    assert upload.has_attestations is sent
    assert upload.status == "completed"


async def test_session_status_then_cancel(cli: Cli, project_name: str, tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    code, out, err = await cli.publish("--stage", "--json", str(wheel))
    assert code == 0, err
    [staged] = json_lines(out)
    assert staged["status"] == "open"
    assert staged["stage_url"].startswith("http://127.0.0.1:")
    sid = staged["id"]

    code, out, err = await cli.session("status", sid, "--json")
    assert code == 0, err
    [status] = json_lines(out)
    assert status["status"] == "open"
    assert status["files"] == {wheel.name: {"status": "completed"}}

    code, out, err = await cli.session("cancel", sid)
    assert code == 0, err
    assert f"Canceled session {sid}" in out

    code, out, err = await cli.session("status", sid)
    assert code == 0, err
    assert f"session {sid}: {project_name} 1.0: canceled" in out


async def test_two_projects_in_one_command_make_two_sessions(
    cli: Cli, live: Api, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    other = project_name + "-other"
    first = build_wheel(tmp_path, project_name, "1.0")
    second = build_wheel(tmp_path, other, "2.0")
    second_sdist = build_sdist(tmp_path, other, "2.0")
    code, out, err = await cli.publish("--json", str(first), str(second), str(second_sdist))
    assert code == 0, err
    results = json_lines(out)
    assert [(r["name"], r["version"], r["status"]) for r in results] == [
        (project_name, "1.0", "published"),
        (other, "2.0", "published"),
    ]
    assert results[0]["session_url"] != results[1]["session_url"]
    assert set(results[1]["files"]) == {second.name, second_sdist.name}
    assert all(on_index(servers_dir, path) for path in (first, second, second_sdist))
    assert len(await sessions_of(live, project_name)) == 1
    assert len(await sessions_of(live, other)) == 1


async def test_legacy_fallback_against_a_bare_index(
    env: dict[str, str], pypiserver: Server, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    cli = Cli(env, pypiserver.url + "/")
    code, out, err = await cli.publish(
        "--json", str(sdist), str(wheel), user=INDEX_USER, password=INDEX_PASSWORD
    )
    assert code == 0, err
    assert "falling back to the legacy upload API" in err
    [result] = json_lines(out)
    assert result["protocol"] == "legacy"
    assert result["status"] == "published"
    assert on_index(servers_dir, wheel)
    assert on_index(servers_dir, sdist)

    # --protocol 2 forbids the fallback.
    again = build_wheel(tmp_path, project_name, "2.0")
    code, _out, err = await cli.publish(
        "--protocol", "2", str(again), user=INDEX_USER, password=INDEX_PASSWORD
    )
    assert code == 1
    assert "does not speak Upload 2.0" in err
    assert not on_index(servers_dir, again)


async def test_ctrl_c_cancels_the_session_it_created(
    cli: Cli, live: Api, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=bytes(200 * MiB))
    process = await cli.start(
        "publish", "-v", "--repository-url", cli.root, "-u", "alice", "-p", "alice-password",
        str(wheel),
    )  # fmt: skip
    assert process.stderr is not None
    seen = []
    async with asyncio.timeout(30):
        while True:
            line = (await process.stderr.readline()).decode()
            assert line, "".join(seen)
            seen.append(line)
            if line.startswith(f"uploading {wheel.name}"):
                break
    [session] = await sessions_of(live, project_name)
    files = await live.client.server.app[SERVICES].session_files.records(session.id)
    assert [upload.status for upload in files] == ["pending"]

    process.send_signal(signal.SIGINT)
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    stderr = "".join(seen) + err.decode()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "canceled session" in stderr
    [session] = await sessions_of(live, project_name)
    assert session.status == "canceled"
    # Nothing is left open: the release can start afresh.
    fresh = await live.create_session(project_name)
    assert fresh["status"] == "open"


async def test_a_refusal_prints_the_problem_and_exits_1(
    cli: Cli, project_name: str, tmp_path: Path, live: Api
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    code, _out, err = await cli.publish(str(wheel))
    assert code == 0, err

    # The file is already on the index: 409 at file creation, and the session is canceled.
    code, out, err = await cli.publish("--json", str(wheel))
    assert code == 1
    assert "409 Conflict" in err
    assert wheel.name in err
    assert "canceled session" in err
    [result] = json_lines(out)
    assert result["error"]["status"] == 409
    assert result["status"] == "canceled"
    statuses = sorted(session.status for session in await sessions_of(live, project_name))
    assert statuses == ["canceled", "published"]

    # A principal without permission for the project: 403 at session creation.
    other = build_wheel(tmp_path, project_name, "2.0")
    code, _out, err = await cli.publish(str(other), user=BOB.name, password=BOB.password)
    assert code == 1
    assert "403 Forbidden" in err


async def test_local_checks_fail_before_any_network(
    env: dict[str, str], project_name: str, tmp_path: Path
) -> None:
    # A repository nobody listens on: the local checks must refuse first.
    cli = Cli(env, f"http://127.0.0.1:{free_port()}/upload/2.0/")
    good = build_wheel(tmp_path, project_name, "1.0")
    renamed = tmp_path / f"{project_name.replace('-', '_')}-2.0-py3-none-any.whl"
    renamed.write_bytes(good.read_bytes())  # METADATA says 1.0
    code, _out, err = await cli.publish(str(good), str(renamed))
    assert code == 2
    assert renamed.name in err
    assert "version" in err

    code, _out, err = await cli.publish(str(tmp_path / "missing-1.0.tar.gz"))
    assert code == 2
    assert "missing-1.0.tar.gz: no such file" in err


class FileStepsInFlight:
    """Counts, at the gateway, the file steps (create, bytes, complete) being served at once.

    Each step is held until another one is in flight too (or a second has passed), so that a
    client that overlaps the steps of different files is seen doing so whatever the timing,
    and one that does not is only slowed down, never seen overlapping."""

    STEPS = ("api:create-file", "mech:http-post-bytes", "api:complete-file")

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0
        self.served: dict[str, int] = {}
        self._changed = asyncio.Condition()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        name = request.match_info.route.name or ""
        self.served[name] = self.served.get(name, 0) + 1
        if name not in self.STEPS:
            return await handler(request)
        async with self._changed:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self._changed.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.now > 1), 1.0)
        try:
            return await handler(request)
        finally:
            self.now -= 1


async def counted_gateway(
    aiohttp_server: Any, make_settings: Any, **sections: dict[str, object]
) -> tuple[str, FileStepsInFlight]:
    """A gateway whose every completion answers 202 (the validation deferred), its file steps
    counted; its API root."""
    port = free_port()
    settings = make_settings(
        server={"public_base_url": f"http://127.0.0.1:{port}"},
        uploads={"defer_validation_above": 0},
        **sections,
    )
    app = create_app(settings, run_sweeper=False)
    steps = FileStepsInFlight()
    app.middlewares.insert(0, steps.middleware)
    await aiohttp_server(app, port=port)
    return f"http://127.0.0.1:{port}{settings.server.api_root}", steps


async def test_publish_pipelines_the_files_of_a_release_and_waits_once(
    aiohttp_server: Any,
    make_settings: Any,
    env: dict[str, str],
    project_name: str,
    tmp_path: Path,
    servers_dir: Path,
) -> None:
    """Issue #26: the files of a release go up ``--parallel`` at a time, the steps of
    different files overlapping; validations the server defers are waited for once, on the
    session, not by polling every file."""
    root, steps = await counted_gateway(aiohttp_server, make_settings)
    cli = Cli(env, root)
    wheels = [
        build_wheel(
            tmp_path, project_name, "1.0", payload=bytes([n]) * 1000, tag=f"py3{n}-none-any"
        )
        for n in range(8)
    ]
    code, out, err = await cli.publish("--json", "--parallel", "3", *map(str, wheels))
    assert code == 0, err
    [result] = json_lines(out)
    assert result["status"] == "published"
    assert all(on_index(servers_dir, wheel) for wheel in wheels)
    assert steps.served["api:complete-file"] == len(wheels)
    assert 2 <= steps.peak <= 3  # overlapping, and bounded by --parallel
    assert "api:file" not in steps.served  # no file polled on its own
    assert steps.served["api:session"] <= 3  # the deferred validations waited for once


async def test_a_deferred_validation_that_fails_fails_the_release(
    aiohttp_server: Any, make_settings: Any, env: dict[str, str], project_name: str, tmp_path: Path
) -> None:
    """A file the server refuses once it has validated it in the background (here: a summary
    PyPI would refuse, which the client does not check) fails the release with the server's
    notice, found when the release's validations are waited for; the session is canceled."""
    root, _ = await counted_gateway(aiohttp_server, make_settings, backend={"index_checks": True})
    cli = Cli(env, root)
    good = build_wheel(tmp_path, project_name, "1.0", tag="py3-none-any")
    bad = build_wheel(tmp_path, project_name, "1.0", tag="py2-none-any", summary="x" * 600)
    code, out, err = await cli.publish("--json", str(good), str(bad))
    assert code == 1, err
    [result] = json_lines(out)
    assert result["status"] == "canceled"
    assert f"{bad.name} ended in 'error'" in result["error"]["detail"]
    assert any("summary" in notice for notice in result["error"]["notices"]), result
