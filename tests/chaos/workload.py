"""The workload: concurrent publishers running the bundled client as CI does (R-W12).

Each publisher publishes releases one after another until the deadline, each release either
with ``upload-gateway publish`` or with ``publish --stage``, a pip install from the stage, and
``session publish``. Some published releases are then installed with pip through the
gateway's read path (the load balancer's ``/simple/``), as every installer would. Releases
hold 1-20 wheels; some carry a file large enough to take several S3 parts and several
seconds. Every attempt is recorded with what the client and pip reported."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import re
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import PIP
from tests.distributions import build_wheel

RETRY_LINE = re.compile(r"warning: (retrying \S+ \S+ in [\d.]+s \((?P<cause>.*)\)|(?P<note>.*))")
CLIENT_TIMEOUT = 300
LARGE = 10 * 1024 * 1024  # > one 8 MiB part
# A published release shows on the read path within proxy.page_max_age (1 s) on every replica.
PAGE_MAX_AGE = 1.0


@dataclass
class Attempt:
    publisher: int
    project: str
    version: str
    mode: str  # "publish" or "stage"
    files: dict[str, str]  # filename -> sha256
    started: float
    ended: float = 0.0
    status: str = "running"  # "published" or "failed"
    session_url: str | None = None
    error: dict[str, Any] | None = None
    retries: list[str] = field(default_factory=list)  # the cause of each retry the client told
    pip: str | None = None  # "ok" / "failed" for a staged release installed from its stage
    # A published release installed through the read path: the file pip chose and the
    # sha256 it verified, from pip's --report ({} when pip failed).
    read_install: dict[str, str] | None = None
    stderr: str = ""

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


@dataclass
class Workload:
    api: str
    simple: str  # the read path: the load balancer's /simple/
    user: str
    password: str
    workdir: Path
    publishers: int
    seed: int
    large_every: int = 4  # one release in this many carries a large file
    stage_every: int = 3  # one release in this many is staged, installed, then published
    read_every: int = 2  # one published release in this many is installed via the read path
    history: list[Attempt] = field(default_factory=list)

    async def run(self, loading: Callable[[], bool]) -> list[Attempt]:
        """Each publisher starts releases while ``loading()`` says so."""
        await asyncio.gather(*(self._publisher(p, loading) for p in range(self.publishers)))
        return self.history

    async def _publisher(self, number: int, loading: Callable[[], bool]) -> None:
        rng = random.Random(self.seed * 1000 + number)
        project = f"chaos-{self.seed}-{number}"
        env = self._env(number)
        release = 0
        while loading():
            release += 1
            version = f"1.{release}"
            count = rng.randint(1, 20)
            large = rng.randrange(self.large_every) == 0
            files = self._build(project, version, count, large, rng)
            mode = "stage" if rng.randrange(self.stage_every) == 0 else "publish"
            attempt = Attempt(
                number, project, version, mode, {p.name: _sha256(p) for p in files}, time.time()
            )
            self.history.append(attempt)
            if mode == "stage":
                await self._staged(attempt, files, env)
            else:
                await self._direct(attempt, files, env)
            attempt.ended = time.time()
            if attempt.status == "published" and rng.randrange(self.read_every) == 0:
                await asyncio.sleep(PAGE_MAX_AGE)
                attempt.read_install = await self._pip_from_read_path(attempt)

    def _build(
        self, project: str, version: str, count: int, large: bool, rng: random.Random
    ) -> list[Path]:
        where = self.workdir / "dists" / project / version
        where.mkdir(parents=True, exist_ok=True)
        files = []
        for index in range(count):
            size = (
                LARGE + rng.randrange(4 << 20) if large and index == 0 else rng.randrange(64 << 10)
            )
            files.append(
                build_wheel(
                    where, project, version, payload=rng.randbytes(size), tag=f"py3{index}-none-any"
                )
            )
        return files

    async def _direct(self, attempt: Attempt, files: list[Path], env: dict[str, str]) -> None:
        code, document, stderr = await self._cli(env, "publish", *map(str, files))
        self._record(attempt, code, document, stderr)

    async def _staged(self, attempt: Attempt, files: list[Path], env: dict[str, str]) -> None:
        code, document, stderr = await self._cli(env, "publish", "--stage", *map(str, files))
        self._record(attempt, code, document, stderr)
        if attempt.status == "failed" or document is None:
            return
        attempt.status = "running"
        stage = document.get("stage_url")
        if stage:
            attempt.pip = await self._pip_from_stage(attempt, stage)
        code, document, stderr = await self._cli(
            env, "session", "publish", str(document["id"]), repository=False
        )
        self._record(attempt, code, document, stderr)

    def _record(
        self, attempt: Attempt, code: int, document: dict[str, Any] | None, stderr: str
    ) -> None:
        attempt.stderr += stderr[-4000:]
        for line in stderr.splitlines():
            match = RETRY_LINE.search(line)
            if match:
                attempt.retries.append(match.group("cause") or match.group("note"))
        if document is not None:
            attempt.session_url = document.get("session_url") or attempt.session_url
            attempt.error = document.get("error")
        ok = code == 0 and document is not None and attempt.error is None
        if not ok:
            attempt.status = "failed"
        elif document is not None:
            attempt.status = "published" if document.get("status") == "published" else "staged"

    async def _cli(
        self, env: dict[str, str], *args: str, repository: bool = True
    ) -> tuple[int, dict[str, Any] | None, str]:
        where = ["--repository-url", self.api] if repository else []
        command = [*args, *where, "-u", self.user, "-p", self.password, "--json"]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
        except TimeoutError:
            process.kill()
            out, err = await process.communicate()
            err += b"\nchaos: the client did not finish in time"
        documents = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
        return process.returncode or 0, (documents[-1] if documents else None), err.decode()

    async def _pip_from_stage(self, attempt: Attempt, stage: str) -> str:
        target = self.workdir / "installs" / f"{attempt.project}-{attempt.version}"
        return "ok" if await self._pip(attempt, stage, target) else "failed"

    async def _pip_from_read_path(self, attempt: Attempt) -> dict[str, str]:
        target = self.workdir / "reads" / f"{attempt.project}-{attempt.version}"
        target.parent.mkdir(parents=True, exist_ok=True)
        report = target.parent / f"{target.name}.json"
        if not await self._pip(attempt, self.simple, target, "--report", str(report)):
            return {}
        installed = json.loads(report.read_text())["install"][0]["download_info"]
        return {
            "file": installed["url"].rsplit("/", 1)[-1].split("#")[0],
            "sha256": installed["archive_info"]["hashes"]["sha256"],
        }

    async def _pip(self, attempt: Attempt, index: str, target: Path, *extra: str) -> bool:
        process = await asyncio.create_subprocess_exec(
            *PIP,
            "install",
            "--no-deps",
            "--index-url",
            index,
            "--target",
            str(target),
            *extra,
            f"{attempt.project}=={attempt.version}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
        if process.returncode != 0:
            attempt.stderr += f"\npip from {index}: " + output.decode()[-2000:]
            return False
        return True

    def _env(self, number: int) -> dict[str, str]:
        home = self.workdir / "publishers" / str(number)
        home.mkdir(parents=True, exist_ok=True)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("TWINE_", "UPLOAD_GATEWAY_", "ACTIONS_ID_TOKEN_"))
        }
        env.update(
            HOME=str(home),
            XDG_STATE_HOME=str(home / "state"),
            UPLOAD_GATEWAY_STATE_FILE=str(home / "sessions.json"),
            UPLOAD_GATEWAY_KEYRING="0",
            PYTHONPATH=str(Path(__file__).parents[2]),
        )
        return env


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
