"""The bundled client's twine habits (issue 18, item 4): --skip-existing, passwords from the
keyring, and next-step hints that work exactly as printed. Real CLI subprocesses, real
gateway, pypiserver and SeaweedFS; the keyring is keyrings.alt's file-backed one."""

from __future__ import annotations

import asyncio
import re
import shlex
import sys
from pathlib import Path

from gateway.devstack import Server
from tests.conftest import INDEX_PASSWORD, INDEX_USER
from tests.distributions import build_sdist, build_wheel
from tests.integration.cli import Cli, json_lines, on_index, sessions_of
from tests.integration.conftest import Api


async def run_as_printed(cli: Cli, line: str, **substitutions: str) -> tuple[int, str, str]:
    """Run a command line the client printed, as a user pasting it would."""
    words = shlex.split(line)
    assert words[0] == "upload-gateway", line
    words = [substitutions.get(word, word) for word in words[1:]]
    return await cli.run(*words)


def keyring_env(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    return {
        **env,
        "PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring",
        "XDG_DATA_HOME": str(tmp_path / "data"),
    }


async def keyring_set(env: dict[str, str], service: str, user: str, password: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import keyring, sys; keyring.set_password(*sys.argv[1:])",
        service,
        user,
        password,
        env=env,
    )
    assert await process.wait() == 0


async def test_skip_existing_rerun_of_a_published_release_exits_0_and_uploads_nothing(
    cli: Cli, live: Api, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"first")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    code, _, err = await cli.publish(str(wheel), str(sdist))
    assert code == 0, err
    code, _, err = await cli.publish(str(wheel), str(sdist))
    assert code == 1  # without the flag, a re-run is refused (409), as with twine
    code, out, err = await cli.publish("--skip-existing", "--json", str(wheel), str(sdist))
    assert code == 0, err
    [result] = json_lines(out)
    assert result["status"] == "skipped"
    assert {entry["status"] for entry in result["files"].values()} == {"skipped"}
    assert "already on the index; skipped" in err
    # Nothing was uploaded: every session of the re-runs ended without a completed file.
    sessions = await sessions_of(live, project_name)
    assert sorted(session.status for session in sessions) == ["canceled", "canceled", "published"]
    assert on_index(servers_dir, wheel)


async def test_skip_existing_publishes_only_what_is_new(
    cli: Cli, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0", payload=b"first")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    assert (await cli.publish(str(wheel)))[0] == 0
    code, out, err = await cli.publish("--skip-existing", str(wheel), str(sdist))
    assert code == 0, err
    assert "Published" in out
    assert f"skipped (already there): {wheel.name}" in out
    assert on_index(servers_dir, sdist)


async def test_a_staged_session_reused_with_skip_existing_skips_what_it_completed(
    cli: Cli, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    sdist = build_sdist(tmp_path, project_name, "1.0")
    assert (await cli.publish("--stage", str(wheel)))[0] == 0
    code, _, err = await cli.publish("--skip-existing", "-v", str(wheel), str(sdist))
    assert code == 0, err
    assert f"{wheel.name}: already completed in this session; skipped" in err
    assert f"uploading {wheel.name}" not in err
    assert f"uploading {sdist.name}" in err
    assert on_index(servers_dir, wheel)
    assert on_index(servers_dir, sdist)


async def test_the_keyring_supplies_the_password_and_the_printed_hint_works_verbatim(
    env: dict[str, str], root: str, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    cli = Cli(keyring_env(env, tmp_path), root)
    await keyring_set(cli.env, root, "alice", "alice-password")
    wheel = build_wheel(tmp_path, project_name, "1.0")
    code, out, err = await cli.run(
        "publish", "--stage", "--repository-url", root, "-u", "alice", str(wheel)
    )
    assert code == 0, err
    assert "password:  from the keyring" in out
    hint = re.search(r"publish:\s+(upload-gateway session publish .*)", out)
    assert hint, out
    assert " -p " not in hint.group(1)
    code, out, err = await run_as_printed(cli, hint.group(1))
    assert code == 0, err
    assert ": published" in out
    assert on_index(servers_dir, wheel)


async def test_no_keyring_turns_the_lookup_off(
    env: dict[str, str], root: str, project_name: str, tmp_path: Path
) -> None:
    cli = Cli(keyring_env(env, tmp_path), root)
    await keyring_set(cli.env, root, "alice", "alice-password")
    wheel = build_wheel(tmp_path, project_name, "1.0")
    base = ("publish", "--repository-url", root, "-u", "alice", str(wheel))
    code, _, err = await cli.run(*base, "--no-keyring")
    assert code == 1
    assert "no credentials given" in err
    cli.env["UPLOAD_GATEWAY_KEYRING"] = "0"
    code, _, err = await cli.run(*base)
    assert code == 1
    assert "no credentials given" in err


async def test_hints_after_staging_say_which_password_the_next_command_needs(
    cli: Cli, project_name: str, tmp_path: Path, servers_dir: Path
) -> None:
    # Given with -p: the next command needs it again, and says so in the command itself.
    wheel = build_wheel(tmp_path, project_name, "1.0")
    code, out, err = await cli.publish("--stage", str(wheel))
    assert code == 0, err
    hint = re.search(r"publish:\s+(upload-gateway session publish .*)", out)
    assert hint, out
    assert hint.group(1).endswith(" -p PASSWORD")
    code, out, err = await run_as_printed(cli, hint.group(1), PASSWORD="alice-password")
    assert code == 0, err
    assert on_index(servers_dir, wheel)

    # From twine's environment variable: the printed command works as long as it is set.
    (tmp_path / "b").mkdir()
    other = build_wheel(tmp_path / "b", project_name + "-b", "1.0")
    cli.env["TWINE_PASSWORD"] = "alice-password"
    code, out, err = await cli.run(
        "publish", "--stage", "--repository-url", cli.root, "-u", "alice", str(other)
    )
    assert code == 0, err
    assert "password:  from $TWINE_PASSWORD: keep it set" in out
    hint = re.search(r"publish:\s+(upload-gateway session publish .*)", out)
    assert hint, out
    code, out, err = await run_as_printed(cli, hint.group(1))
    assert code == 0, err
    assert on_index(servers_dir, other)


async def test_skip_existing_with_the_legacy_api(
    env: dict[str, str], pypiserver: Server, project_name: str, tmp_path: Path
) -> None:
    wheel = build_wheel(tmp_path, project_name, "1.0")
    cli = Cli(env, pypiserver.url + "/")
    login = {"user": INDEX_USER, "password": INDEX_PASSWORD}
    assert (await cli.publish("--protocol", "legacy", str(wheel), **login))[0] == 0
    code, _, _ = await cli.publish("--protocol", "legacy", str(wheel), **login)
    assert code == 1  # pypiserver refuses the re-upload
    code, out, err = await cli.publish(
        "--protocol", "legacy", "--skip-existing", "--json", str(wheel), **login
    )
    assert code == 0, err
    [result] = json_lines(out)
    assert result["files"][wheel.name]["status"] == "skipped"
