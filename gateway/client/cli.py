"""``upload-gateway publish`` and ``upload-gateway session ...``: an Upload 2.0 client CLI.

``publish FILES...`` checks every file locally, groups them by (normalized name, version) into
one publishing session each, uploads the files of a session in parallel, completes them and
publishes — or, with ``--stage``, leaves the session open and prints its stage URL and a short
local id for ``session publish|cancel|status|extend ID``. Against a URL that does not speak
Upload 2.0 it falls back to the legacy upload API (``--protocol auto``, the default).

Exit status: 0 done, 1 the server refused or could not be reached, 2 a usage or local-file
error, 130 interrupted (Ctrl+C cancels the sessions this command created, unless ``--stage``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.client.api import (
    ClientError,
    NotUpload2Error,
    OperationFailed,
    ProblemError,
    PublishingSession,
    UploadClient,
)
from gateway.client.audit import events_table
from gateway.client.credentials import (
    DEFAULT_OIDC_AUDIENCE,
    CredentialError,
    Credentials,
    fetch_oidc_token,
    resolve_credentials,
)
from gateway.client.local import (
    Distribution,
    LocalCheckError,
    Release,
    expand_inputs,
    group_releases,
    inspect_distributions,
)
from gateway.client.state import (
    SessionRecord,
    StateError,
    StateFile,
    default_state_file,
    local_id,
)
from gateway.protocol.audit import AuditEvent

__all__ = ["register"]

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# A session that expires sooner than this is extended before uploading (if the server can).
_EXTEND_WHEN_WITHIN = timedelta(hours=1)
_EXTEND_BY = 3600


# -- argument parsing ----------------------------------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _add_credential_options(common)
    _add_tls_and_output_options(common)
    return common


def _add_credential_options(common: argparse.ArgumentParser) -> None:
    repo = common.add_argument_group("repository and credentials (like twine)")
    repo.add_argument(
        "--repository-url",
        metavar="URL",
        help="the Upload 2.0 API root (or a legacy upload URL); "
        "default: $UPLOAD_GATEWAY_REPOSITORY_URL, $TWINE_REPOSITORY_URL",
    )
    repo.add_argument("-r", "--repository", metavar="NAME", help="a section of the .pypirc file")
    repo.add_argument(
        "--config-file", type=Path, metavar="PYPIRC", help="the .pypirc file (~/.pypirc)"
    )
    repo.add_argument("-u", "--username", help="default: $UPLOAD_GATEWAY_USERNAME, $TWINE_USERNAME")
    repo.add_argument(
        "-p",
        "--password",
        help="password or API token; default: $UPLOAD_GATEWAY_PASSWORD, $TWINE_PASSWORD",
    )
    repo.add_argument(
        "--no-keyring",
        action="store_true",
        help="do not look passwords up in the system keyring (also: UPLOAD_GATEWAY_KEYRING=0)",
    )
    repo.add_argument(
        "--oidc-audience",
        default=DEFAULT_OIDC_AUDIENCE,
        help="audience of the GitHub Actions OIDC token used when no password is given "
        f"(default {DEFAULT_OIDC_AUDIENCE!r})",
    )


def _add_tls_and_output_options(common: argparse.ArgumentParser) -> None:
    network = common.add_argument_group("TLS (like twine)")
    network.add_argument(
        "--cert",
        metavar="PATH",
        help="CA bundle to verify the server with; default: $UPLOAD_GATEWAY_CERT, $TWINE_CERT, "
        "else the system store",
    )
    network.add_argument(
        "--client-cert",
        metavar="PATH",
        help="PEM file with a client certificate and its key (mutual TLS); default: "
        "$UPLOAD_GATEWAY_CLIENT_CERT, $TWINE_CLIENT_CERT",
    )
    common.add_argument(
        "--state-file",
        type=Path,
        help="where local session ids are kept "
        "(default $UPLOAD_GATEWAY_STATE_FILE or $XDG_STATE_HOME/upload-gateway/sessions.json)",
    )
    out = common.add_argument_group("output")
    loudness = out.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true", help="only results and errors")
    loudness.add_argument("-v", "--verbose", action="store_true", help="every step")
    out.add_argument(
        "--json", action="store_true", help="print one JSON object per session on stdout"
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``publish`` and ``session`` to the ``upload-gateway`` subcommands."""
    common = _common_options()
    _add_publish(commands, common)
    _add_session(commands, common)


def _add_publish(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    publish = commands.add_parser(
        "publish",
        parents=[common],
        help="upload distributions with Upload 2.0 (PEP 694) and publish or stage them",
        description="Upload wheels and sdists: one publishing session per project version, "
        "files uploaded in parallel, then published (or only staged with --stage).",
    )
    publish.add_argument("files", nargs="+", metavar="FILE", help="wheels and .tar.gz sdists")
    publish.add_argument(
        "--stage",
        action="store_true",
        help="upload but do not publish; print the stage URL and a session id",
    )
    publish.add_argument(
        "--skip-existing",
        action="store_true",
        help="a file the index already has (or that this session already completed with the "
        "same bytes) is reported as skipped, not as an error, as twine does",
    )
    publish.add_argument(
        "--parallel", type=_positive, default=4, metavar="N", help="files uploaded at once (4)"
    )
    publish.add_argument(
        "--attestations",
        action="store_const",
        const=True,
        default="found",
        help="require PEP 740 attestations next to each file ({file}.*.attestation); "
        "by default those found there are sent",
    )
    publish.add_argument(
        "--no-attestations",
        action="store_const",
        const=False,
        dest="attestations",
        help="do not send the attestations found next to the files",
    )
    publish.add_argument(
        "--protocol",
        choices=("auto", "2", "legacy"),
        default="auto",
        help="auto: Upload 2.0, else the legacy API (default); 2: never fall back; "
        "legacy: only the legacy API",
    )
    publish.set_defaults(client_main=_publish_entry)


def _add_session(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    session = commands.add_parser(
        "session",
        help="status, publish, cancel or extend a session staged with 'publish --stage'",
    )
    actions = session.add_subparsers(dest="session_command", required=True, metavar="ACTION")
    for name, text in (
        ("status", "show a session's status and files"),
        ("publish", "publish a staged session"),
        ("cancel", "cancel a session and discard its files"),
        ("extend", "ask the server to keep a session longer"),
        ("approve", "approve a release's current files (release gates, docs/policy.md)"),
    ):
        action = actions.add_parser(name, parents=[common], help=text, description=text)
        action.add_argument(
            "id",
            metavar="ID",
            help="the local session id, a session URL, or NAME==VERSION (the release's "
            "session, e.g. one staged legacy uploads created; needs --repository-url)",
        )
        if name == "extend":
            action.add_argument(
                "--seconds", type=_positive, default=_EXTEND_BY, help="how much longer (3600)"
            )
        action.set_defaults(client_main=_session_entry)
    listing = actions.add_parser("list", parents=[common], help="the sessions this machine knows")
    listing.set_defaults(client_main=_session_entry)
    _register_audit(commands, common)


def _register_audit(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    audit = commands.add_parser(
        "audit",
        parents=[common],
        help="who published what, when and from where (needs the audit permission)",
        description="The gateway's audit journal, newest first: releases, session changes, "
        "refusals. --json prints one event per line.",
    )
    audit.add_argument("--project", help="only this project's events")
    audit.add_argument("--since", metavar="DATE", help="from this date (2026-11-01) or time on")
    audit.add_argument(
        "--limit", type=_positive, default=100, metavar="N", help="at most N events (100)"
    )
    audit.set_defaults(client_main=lambda args: _run(args, audit_command))


# -- output ---------------------------------------------------------------------------------


class Reporter:
    """Human messages on stderr, results on stdout (JSON lines with ``--json``), progress bars."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False, json_mode: bool = False):
        from rich.console import Console

        self.quiet = quiet
        self.verbose = verbose
        self.json_mode = json_mode
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def _say(self, message: str, style: str | None = None) -> None:
        self.console.print(message, markup=False, highlight=False, style=style, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._say(message)

    def step(self, message: str) -> None:
        if self.verbose:
            self._say(message, style="dim")

    def warn(self, message: str) -> None:
        self._say(f"warning: {message}", style="yellow")

    def error(self, message: str) -> None:
        self._say(f"error: {message}", style="red")

    def problem(self, context: str, exc: BaseException) -> None:
        self.error(f"{context}{describe_error(exc)}")
        for line in error_lines(exc):
            self._say(f"  {line}", style="red")

    def result(self, document: Mapping[str, Any], lines: list[str]) -> None:
        if self.json_mode:
            print(json.dumps(document), flush=True)
        else:
            for line in lines:
                print(line, flush=True)

    @contextlib.contextmanager
    def transfer(self, files: list[Distribution]) -> Iterator[Transfer]:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        enabled = not self.quiet and self.console.is_terminal
        progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not enabled,
        )
        total = progress.add_task(
            "all files", total=sum(f.size for f in files), visible=len(files) > 1
        )
        with progress:
            yield Transfer(progress, total)


@dataclass
class Transfer:
    progress: Any
    total: Any

    def track(self, dist: Distribution) -> Callable[[int], None]:
        task = self.progress.add_task(dist.filename, total=dist.size)

        def advance(count: int) -> None:
            self.progress.advance(task, count)
            self.progress.advance(self.total, count)

        return advance


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, ProblemError):
        text = f"{exc.status} {exc.title}"
        return f"{text}: {exc.detail}" if exc.detail else text
    return str(exc)


def error_lines(exc: BaseException) -> list[str]:
    lines = []
    if isinstance(exc, ProblemError):
        for item in exc.errors:
            if item.get("message") and item["message"] != exc.detail:
                source = item.get("source")
                lines.append(f"- {source}: {item['message']}" if source else f"- {item['message']}")
    if isinstance(exc, OperationFailed):
        lines.extend(f"- {notice}" for notice in exc.notices)
    return lines


def error_document(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ProblemError):
        return exc.as_dict()
    document: dict[str, Any] = {"detail": str(exc)}
    if isinstance(exc, OperationFailed):
        document["notices"] = exc.notices
    return document


# -- entry points ---------------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    reporter: Reporter
    env: Mapping[str, str]
    interrupted: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def state(self) -> StateFile:
        return StateFile(self.args.state_file or default_state_file(self.env))

    def tls_files(self, record: SessionRecord | None = None) -> tuple[str | None, str | None]:
        """--cert and --client-cert: the options, the environment, else what the session
        was created with."""
        cert = self.args.cert or _env_first(self.env, "CERT")
        client_cert = self.args.client_cert or _env_first(self.env, "CLIENT_CERT")
        if record is not None:
            cert, client_cert = cert or record.cert, client_cert or record.client_cert
        return cert, client_cert

    def http(self, record: SessionRecord | None = None) -> aiohttp.ClientSession:
        cert, client_cert = self.tls_files(record)
        if cert is None and client_cert is None:
            return aiohttp.ClientSession()
        try:
            context = ssl.create_default_context(cafile=cert)
            if client_cert:
                context.load_cert_chain(client_cert)
        except (OSError, ssl.SSLError) as exc:
            raise CredentialError(f"cannot use --cert/--client-cert: {exc}") from None
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context))


def _env_first(env: Mapping[str, str], key: str) -> str | None:
    return env.get(f"UPLOAD_GATEWAY_{key}") or env.get(f"TWINE_{key}") or None


def _publish_entry(args: argparse.Namespace) -> int:
    return _run(args, publish_command)


def _session_entry(args: argparse.Namespace) -> int:
    return _run(args, session_command)


def _run(args: argparse.Namespace, command: Callable[[Context], Awaitable[int]]) -> int:
    reporter = Reporter(quiet=args.quiet, verbose=args.verbose, json_mode=args.json)

    async def main() -> int:
        context = Context(args, reporter, dict(os.environ))
        loop = asyncio.get_running_loop()
        work = asyncio.ensure_future(command(context))

        def on_sigint() -> None:
            context.interrupted.set()
            work.cancel()
            # A second Ctrl+C during the clean-up stops at once.
            loop.remove_signal_handler(signal.SIGINT)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        try:
            return await work
        except asyncio.CancelledError:
            return EXIT_INTERRUPTED

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (LocalCheckError, CredentialError, StateError) as exc:
        reporter.error(str(exc))
        return EXIT_USAGE
    except ClientError as exc:
        reporter.problem("", exc)
        return EXIT_REFUSED
    except Exception as exc:  # a bug or an odd environment: say what, no traceback
        if args.verbose:
            reporter.console.print_exception()
        reporter.error(f"unexpected {type(exc).__name__}: {exc} (--verbose shows the traceback)")
        return EXIT_REFUSED


async def _authenticated(
    context: Context, http: aiohttp.ClientSession, **resolve: Any
) -> Credentials:
    args = context.args
    credentials = resolve_credentials(
        repository_url=resolve.get("repository_url", args.repository_url),
        repository=resolve.get("repository", args.repository),
        username=args.username or resolve.get("username"),
        password=args.password,
        config_file=args.config_file,
        env=context.env,
        fallback_url=resolve.get("fallback_url"),
        use_keyring=not args.no_keyring,
    )
    if credentials.oidc_pending:
        context.reporter.step("requesting a GitHub Actions OIDC token")
        credentials = credentials.with_token(
            await fetch_oidc_token(http, context.env, args.oidc_audience)
        )
    if credentials.authorization is None:
        context.reporter.warn("no credentials given; the server will probably refuse")
    else:
        who = credentials.username or "__token__"
        if credentials.token:
            context.reporter.step("authenticating with a GitHub Actions OIDC token")
        else:
            context.reporter.step(f"authenticating as {who} (secret from {credentials.source})")
    return credentials


# -- publish --------------------------------------------------------------------------------


@dataclass
class Outcome:
    release: Release
    protocol: str
    status: str = "open"
    session: PublishingSession | None = None
    local_id: str | None = None
    error: BaseException | None = None
    reported: bool = False
    uploaded: set[str] = field(default_factory=set)  # legacy uploads that went through
    skipped: set[str] = field(default_factory=set)  # --skip-existing: already there

    def document(self) -> dict[str, Any]:
        session_files = self.session.files if self.session is not None else {}
        files = {}
        for dist in self.release.files:
            entry = session_files.get(dist.filename, {})
            status = entry.get("status")
            if dist.filename in self.skipped:
                status = "skipped"
            elif status is None:
                status = "uploaded" if dist.filename in self.uploaded else "not uploaded"
            files[dist.filename] = {"status": status, "size": dist.size, "sha256": dist.sha256}
        document: dict[str, Any] = {
            "id": self.local_id,
            "name": self.release.name,
            "version": self.release.version,
            "protocol": self.protocol,
            "status": self.status,
            "session_url": self.session.url if self.session is not None else None,
            "stage_url": self.session.stage if self.session is not None else None,
            "expires_at": self.session.expires_at if self.session is not None else None,
            "files": files,
            "notices": self.session.notices if self.session is not None else [],
        }
        if self.error is not None:
            document["error"] = error_document(self.error)
        return document


async def publish_command(context: Context) -> int:
    args = context.args
    if args.stage and args.protocol == "legacy":
        raise LocalCheckError("--stage needs Upload 2.0; the legacy API publishes at once")
    paths = expand_inputs(args.files)
    async with context.http() as http:
        credentials = await _authenticated(context, http)
        distributions = await inspect_distributions(paths, attestations=args.attestations)
        releases = group_releases(distributions)
        for release in releases:
            names = ", ".join(dist.filename for dist in release.files)
            context.reporter.step(f"{release.name} {release.version}: {names}")
        run = PublishRun(context, http, credentials, releases)
        try:
            return await run.execute()
        except asyncio.CancelledError:
            if not context.interrupted.is_set():
                raise
            await run.interrupted()
            return EXIT_INTERRUPTED


class PublishRun:
    def __init__(
        self,
        context: Context,
        http: aiohttp.ClientSession,
        credentials: Credentials,
        releases: list[Release],
    ) -> None:
        self.context = context
        self.args = context.args
        self.reporter = context.reporter
        self.http = http
        self.credentials = credentials
        self.releases = releases
        self.protocol: str = self.args.protocol
        self.client = UploadClient(
            credentials.repository_url, authorization=credentials.authorization, http=http
        )
        self.state = context.state
        # Sessions this command created and has not yet published: canceled on Ctrl+C.
        self.live: dict[str, tuple[PublishingSession, Release]] = {}

    async def execute(self) -> int:
        for release in self.releases:
            outcome = await self.release(release)
            self.emit(outcome)
            if outcome.error is not None:
                return EXIT_REFUSED
        return EXIT_OK

    async def release(self, release: Release) -> Outcome:
        if self.protocol in ("auto", "2"):
            try:
                session, created = await self.client.create_session(release.name, release.version)
            except NotUpload2Error as exc:
                if self.protocol == "2":
                    return Outcome(
                        release,
                        "2",
                        "failed",
                        error=ClientError(f"{exc}; --protocol 2 does not fall back"),
                    )
                if self.args.stage:
                    return Outcome(
                        release,
                        "legacy",
                        "failed",
                        error=ClientError(f"{exc}; cannot stage with the legacy upload API"),
                    )
                self.reporter.info(
                    f"{self.credentials.repository_url} does not speak Upload 2.0 "
                    f"(HTTP {exc.status}); falling back to the legacy upload API"
                )
                self.protocol = "legacy"
            except ClientError as exc:
                return Outcome(release, "2", "failed", error=exc)
            else:
                self.protocol = "2"
                return await self.upload2(release, session, created)
        return await self.upload_legacy(release)

    # Upload 2.0 ---------------------------------------------------------------------------

    async def upload2(self, release: Release, session: PublishingSession, created: bool) -> Outcome:
        lid = local_id(session.url)
        outcome = Outcome(release, "2", session.status, session, lid)
        self._remember(lid, release, session)
        if created:
            self.live[lid] = (session, release)
            self.reporter.step(f"{release.name} {release.version}: created session {lid}")
        else:
            self.reporter.info(
                f"{release.name} {release.version} already has a live session; reusing it ({lid})"
            )
        try:
            if session.status not in ("open", "error"):
                raise ClientError(f"the live session is {session.status!r}; nothing can be added")
            await self.clear_stale_files(session, release)
            session = await self.keep_alive(session)
            outcome.skipped = await self.upload_files(session, release, lid)
        except ClientError as exc:
            outcome.error = exc
            outcome.session = await self._refresh(session)
            self.report(outcome)  # before the clean-up messages
            await self.abandon(lid, release, created)
            outcome.status = "canceled" if created and not self.args.stage else "open"
            return outcome
        if created and outcome.skipped == {dist.filename for dist in release.files}:
            # Everything is on the index already: nothing to publish, and no session to keep.
            await self._cancel(lid, session, release)
            outcome.status = "skipped"
            return outcome

        if self.args.stage:
            self.live.pop(lid, None)
            outcome.session = await self._refresh(session)
            outcome.status = outcome.session.status
            self.state.update(lid, status=outcome.status)
            return outcome
        return await self._publish(lid, release, session, outcome)

    def _remember(self, lid: str, release: Release, session: PublishingSession) -> None:
        """Record the session locally, so that ``session`` commands can find it later."""
        previous = self.state.records().get(lid)  # a reused session: what we completed in it
        self.state.save(
            SessionRecord(
                id=lid,
                session_url=session.url,
                repository_url=self.credentials.repository_url,
                name=release.name,
                version=release.version,
                stage_url=session.stage,
                status=session.status,
                files=[dist.filename for dist in release.files],
                username=self.credentials.username,
                password_source=self.credentials.source,
                cert=_absolute(self.context.tls_files()[0]),
                client_cert=_absolute(self.context.tls_files()[1]),
                completed=previous.completed if previous is not None else {},
            )
        )

    async def _publish(
        self, lid: str, release: Release, session: PublishingSession, outcome: Outcome
    ) -> Outcome:
        self.reporter.info(f"publishing {release.name} {release.version}")
        try:
            published = await self.client.publish(session)
        except ClientError as exc:
            # The session stays as the server left it: publishing again resumes.
            self.live.pop(lid, None)
            outcome.error = exc
            outcome.session = await self._refresh(session)
            outcome.status = outcome.session.status
            self.state.update(lid, status=outcome.status)
            self.reporter.info(
                f"session {lid} is kept: retry with '{self.next_command('publish', lid)}' "
                f"or discard it with '{self.next_command('cancel', lid)}'"
            )
            return outcome
        self.live.pop(lid, None)
        outcome.session = published
        outcome.status = published.status
        self.state.update(lid, status=published.status)
        return outcome

    async def _refresh(self, session: PublishingSession) -> PublishingSession:
        try:
            return await self.client.get_session(session.url)
        except ClientError:
            return session

    async def clear_stale_files(self, session: PublishingSession, release: Release) -> None:
        """In a reused session, unfinished uploads of our files would block new ones (409)."""
        for dist in release.files:
            entry = session.files.get(dist.filename)
            if entry is None or entry.get("status") == "completed":
                continue
            if entry.get("status") == "processing":
                raise ClientError(f"{dist.filename} is being validated in the live session")
            self.reporter.step(f"{dist.filename}: deleting the unfinished upload in the session")
            await self.client.delete_file(entry["link"])

    async def keep_alive(self, session: PublishingSession) -> PublishingSession:
        expires = _parse_time(session.expires_at)
        if expires is None or expires - datetime.now(UTC) > _EXTEND_WHEN_WITHIN:
            return session
        if "extend" not in session.links:
            self.reporter.warn(
                f"the session expires at {session.expires_at} and cannot be extended"
            )
            return session
        return await self.client.extend_session(session, _EXTEND_BY)

    def already_completed(self, session: PublishingSession, release: Release, lid: str) -> set[str]:
        """--skip-existing in a reused session: files it completed with these very bytes."""
        if not self.args.skip_existing:
            return set()
        record = self.state.records().get(lid)
        done = record.completed if record is not None else {}
        same = {
            dist.filename
            for dist in release.files
            if (session.files.get(dist.filename) or {}).get("status") == "completed"
            and done.get(dist.filename) == dist.sha256
        }
        for filename in sorted(same):
            self.reporter.info(f"{filename}: already completed in this session; skipped")
        return same

    async def upload_files(
        self, session: PublishingSession, release: Release, lid: str
    ) -> set[str]:
        """Upload the release's files; the names skipped (--skip-existing)."""
        limit = asyncio.Semaphore(self.args.parallel)
        skipped = self.already_completed(session, release, lid)
        with self.reporter.transfer(release.files) as transfer:

            async def one(dist: Distribution) -> None:
                if dist.filename in skipped:
                    return
                async with limit:
                    self.reporter.step(f"{dist.filename}: creating the file upload")
                    if await self._upload_one(session, dist, transfer):
                        self.state.mark_completed(lid, dist.filename, dist.sha256)
                    else:
                        skipped.add(dist.filename)

            await _all_or_nothing([one(dist) for dist in release.files])
        return skipped

    async def _upload_one(
        self, session: PublishingSession, dist: Distribution, transfer: Transfer
    ) -> bool:
        """True once uploaded and completed; False when --skip-existing skips it."""
        try:
            await self._upload_file(session, dist, transfer)
        except ProblemError as exc:
            if not (self.args.skip_existing and _already_on_index(exc)):
                raise
            self.reporter.info(f"{dist.filename}: already on the index; skipped")
            return False
        return True

    async def _upload_file(
        self, session: PublishingSession, dist: Distribution, transfer: Transfer
    ) -> None:
        await self.client.upload_file(
            session,
            dist.path,
            size=dist.size,
            hashes=dist.hashes,
            attestations=list(dist.attestations) or None,
            progress=transfer.track(dist),
            on_created=lambda file: self.reporter.step(
                f"uploading {dist.filename} ({dist.size} bytes, {file.mechanism_identifier})"
            ),
            on_resume=lambda name, offset: self.reporter.info(
                f"{name}: the connection dropped; resuming at byte {offset} "
                "(the server has everything before it)"
            ),
        )
        self.reporter.step(f"{dist.filename}: completed")

    async def abandon(self, lid: str, release: Release, created: bool) -> None:
        """After a failed upload: cancel the session we created, unless staging."""
        entry = self.live.pop(lid, None)
        if not created or entry is None:
            return
        if self.args.stage:
            self.reporter.info(
                f"session {lid} is left open for inspection: "
                f"'{self.next_command('status', lid)}' / '{self.next_command('cancel', lid)}'"
            )
            return
        await self._cancel(lid, entry[0], release)

    async def _cancel(self, lid: str, session: PublishingSession, release: Release) -> None:
        try:
            await asyncio.wait_for(self.client.cancel_session(session.url), 20)
        except (ClientError, TimeoutError) as exc:
            self.reporter.warn(f"could not cancel session {lid}: {describe_error(exc)}")
            return
        self.state.update(lid, status="canceled")
        self.reporter.info(f"canceled session {lid} ({release.name} {release.version})")

    async def interrupted(self) -> None:
        if self.args.stage:
            for lid, (_session, release) in self.live.items():
                self.reporter.info(
                    f"interrupted: session {lid} ({release.name} {release.version}) is left "
                    f"open; '{self.next_command('cancel', lid)}' discards it"
                )
            return
        self.reporter.info("interrupted: canceling the sessions this command created")
        for lid, (session, release) in list(self.live.items()):
            await self._cancel(lid, session, release)
        self.live.clear()

    # legacy -------------------------------------------------------------------------------

    async def upload_legacy(self, release: Release) -> Outcome:
        from gateway.client.legacy import form_fields, upload_legacy

        outcome = Outcome(release, "legacy", "open")
        url = self.credentials.repository_url
        for dist in release.files:
            form_fields(dist)  # a file the form cannot carry fails before any byte moves
        try:
            with self.reporter.transfer(release.files) as transfer:
                for dist in release.files:
                    self.reporter.step(f"uploading {dist.filename} ({dist.size} bytes, legacy)")
                    try:
                        await upload_legacy(
                            self.http,
                            url,
                            dist,
                            authorization=self.credentials.authorization,
                            progress=transfer.track(dist),
                            retry=self.client.retry,
                        )
                    except ProblemError as exc:
                        if not (self.args.skip_existing and _legacy_already_there(exc)):
                            raise
                        self.reporter.info(f"{dist.filename}: already on the index; skipped")
                        outcome.skipped.add(dist.filename)
                        continue
                    outcome.uploaded.add(dist.filename)
        except ClientError as exc:
            outcome.status = "failed"
            outcome.error = exc
            return outcome
        outcome.status = "published"
        return outcome

    # output -------------------------------------------------------------------------------

    def report(self, outcome: Outcome) -> None:
        """Print the outcome's error on stderr, once."""
        if outcome.error is None or outcome.reported:
            return
        outcome.reported = True
        release = outcome.release
        self.reporter.problem(f"{release.name} {release.version}: ", outcome.error)
        if outcome.session is not None:
            for notice in outcome.session.notices:
                self.reporter.error(f"  notice: {notice}")

    def emit(self, outcome: Outcome) -> None:
        release = outcome.release
        what = f"{release.name} {release.version}"
        count = f"{len(release.files)} file{'s' if len(release.files) != 1 else ''}"
        if outcome.error is not None:
            self.report(outcome)
            self.reporter.result(outcome.document(), [])
            return
        lines: list[str]
        if outcome.protocol == "legacy":
            lines = [f"Uploaded {what} ({count}) with the legacy upload API"]
            if outcome.skipped:
                lines.append(f"  skipped (already there): {', '.join(sorted(outcome.skipped))}")
        elif outcome.status == "skipped":
            lines = [f"Skipped {what}: all {count} already on the index"]
        elif outcome.status == "published":
            lines = [f"Published {what} ({count}) [session {outcome.local_id}]"]
            if outcome.skipped:
                lines.append(f"  skipped (already there): {', '.join(sorted(outcome.skipped))}")
        else:
            session = outcome.session
            assert session is not None
            lines = [f"Staged {what} ({count}): session {outcome.local_id}"]
            if session.stage:
                lines.append(f"  stage URL: {session.stage}")
                lines.append(f"  preview:   {session.stage}+preview/")  # the gateway's page
            lid = outcome.local_id or ""
            lines.append(f"  publish:   {self.next_command('publish', lid)}")
            lines.append(f"  cancel:    {self.next_command('cancel', lid)}")
            lines.append(f"  password:  {self.password_hint()}")
        self.reporter.result(outcome.document(), lines)

    def next_command(self, action: str, lid: str) -> str:
        """The command to run next, as it must be typed: the session remembers the repository,
        username and TLS files; a password given with -p is not stored and must be given again."""
        command = f"upload-gateway session {action} {lid}"
        if self.args.state_file:
            command += f" --state-file {shlex.quote(str(self.args.state_file))}"
        if self.credentials.source == "command line":
            command += " -p PASSWORD"
        return command

    def password_hint(self) -> str:
        source = self.credentials.source
        if self.credentials.token:
            return "a new GitHub Actions OIDC token (in the same CI job)"
        if source == "command line":
            return "given with -p and not stored: give it again (or keep it in the keyring)"
        if source == "keyring":
            return "from the keyring, as now"
        if source.startswith(("UPLOAD_GATEWAY_", "TWINE_")):
            return f"from ${source}: keep it set"
        return f"from {source}, as now" if source != "none" else "none was given"


async def _all_or_nothing(coroutines: list[Awaitable[None]]) -> None:
    """Run concurrently; the first failure (in order) cancels the rest and propagates."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure


def _already_on_index(exc: ProblemError) -> bool:
    # The file is published (or being published by another session): what twine's
    # --skip-existing skips.
    slug = exc.type.replace("/", ":").rsplit(":", 1)[-1]  # urn:...:slug or .../slug
    return exc.status == 409 and slug in (
        "already-published",
        "filename-reserved",
    )


def _legacy_already_there(exc: ProblemError) -> bool:
    # What twine's --skip-existing recognises: 409, or a 400 whose reason says so (pypiserver,
    # older Warehouse).
    said = f"{exc.title} {exc.detail}".lower()
    return exc.status == 409 or (exc.status == 400 and "exist" in said)


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


# -- session --------------------------------------------------------------------------------


async def session_command(context: Context) -> int:
    args = context.args
    state = context.state
    if args.session_command == "list":
        return _list_sessions(context, state)
    release = _release_reference(args.id)
    if release is not None:
        return await _release_session_command(context, *release)
    session_url, record = _find_session(state, args.id)
    explicit = args.repository_url or args.repository
    repository_url = args.repository_url if explicit or record is None else record.repository_url
    async with context.http(record) as http:
        credentials = await _authenticated(
            context,
            http,
            repository_url=repository_url,
            fallback_url=session_url,
            username=record.username if record is not None else None,
        )
        client = UploadClient(
            record.repository_url if record is not None else session_url,
            authorization=credentials.authorization,
            http=http,
        )
        lid = record.id if record is not None else local_id(session_url)
        try:
            session = await client.get_session(session_url)
            session = await _apply(context, client, session, lid)
        except ClientError as exc:
            _report_session_failure(context, lid, record, exc)
            return EXIT_REFUSED
    if record is not None:
        state.update(lid, status=session.status)
    _show_session(context.reporter, lid, record, session, args.session_command)
    return EXIT_OK


async def _apply(
    context: Context, client: UploadClient, session: PublishingSession, lid: str
) -> PublishingSession:
    """Run the session action the command names; the session as it is afterwards."""
    action = context.args.session_command
    if action == "publish":
        context.reporter.info(f"publishing session {lid}")
        return await client.publish(session)
    if action == "cancel":
        await client.cancel_session(session.url)
        return await client.get_session(session.url)
    if action == "extend":
        return await client.extend_session(session, context.args.seconds)
    if action == "approve":
        await client.approve_session(session.url)
        return await client.get_session(session.url)
    return session


def _release_reference(reference: str) -> tuple[str, str] | None:
    """``NAME==VERSION`` as (name, version); None for a local id or a session URL."""
    if reference.startswith(("http://", "https://")) or "==" not in reference:
        return None
    name, _, version = reference.partition("==")
    if not name.strip() or not version.strip():
        raise LocalCheckError(f"{reference!r}: a release is NAME==VERSION")
    return name.strip(), version.strip()


async def _release_session_command(context: Context, name: str, version: str) -> int:
    """The session of a release, found with no session id (one that staged legacy uploads
    created, say). Upload 2.0 has no lookup, but a create for a release with a live session
    answers 409 + Location (PEP 694); a session that lookup creates instead is canceled."""
    async with context.http(None) as http:
        credentials = await _authenticated(context, http)
        client = UploadClient(
            credentials.repository_url, authorization=credentials.authorization, http=http
        )
        try:
            session, created = await client.create_session(name, version)
            if created:
                await client.cancel_session(session.url)
                context.reporter.error(f"{name} {version} has no session in progress")
                return EXIT_REFUSED
            lid = local_id(session.url)
            session = await _apply(context, client, session, lid)
        except ClientError as exc:
            context.reporter.problem(f"{name} {version}: ", exc)
            if context.reporter.json_mode:
                print(json.dumps({"release": f"{name}=={version}", "error": error_document(exc)}))
            return EXIT_REFUSED
    _show_session(context.reporter, lid, None, session, context.args.session_command)
    return EXIT_OK


def _find_session(state: StateFile, reference: str) -> tuple[str, SessionRecord | None]:
    """The session's URL and its local record: ``reference`` is a local id or a session URL
    (which may have no local record)."""
    if reference.startswith(("http://", "https://")):
        with contextlib.suppress(StateError):
            return reference, state.get(reference)
        return reference, None
    record = state.get(reference)
    return record.session_url, record


def _report_session_failure(
    context: Context, lid: str, record: SessionRecord | None, exc: ClientError
) -> None:
    if isinstance(exc, ProblemError) and exc.status == 404 and record is not None:
        context.state.update(lid, status="gone")
        context.reporter.error(
            f"session {lid} no longer exists on the server (ended and forgotten, or expired)"
        )
    else:
        context.reporter.problem(f"session {lid}: ", exc)
    if context.reporter.json_mode:
        print(json.dumps({"id": lid, "error": error_document(exc)}), flush=True)


def _show_session(
    reporter: Reporter,
    lid: str,
    record: SessionRecord | None,
    session: PublishingSession,
    action: str,
) -> None:
    what = f"{record.name} {record.version}" if record is not None else session.url
    document = {
        "id": lid,
        "name": record.name if record else None,
        "version": record.version if record else None,
        "status": session.status,
        "session_url": session.url,
        "stage_url": session.stage,
        "expires_at": session.expires_at,
        "files": {name: {"status": entry.get("status")} for name, entry in session.files.items()},
        "notices": session.notices,
    }
    verb = {
        "publish": "Published",
        "cancel": "Canceled",
        "extend": "Extended",
        "approve": "Approved",
    }.get(action)
    lines = [f"{verb} session {lid} ({what})"] if verb else []
    lines.append(f"session {lid}: {what}: {session.status}")
    if session.status in ("open", "error", "processing"):
        lines.append(f"  expires at: {session.expires_at}")
        if session.stage:
            lines.append(f"  stage URL:  {session.stage}")
    for name, entry in sorted(session.files.items()):
        lines.append(f"  {name}: {entry.get('status')}")
        lines.extend(f"    notice: {notice}" for notice in entry.get("notices") or [])
    lines.extend(f"  notice: {notice}" for notice in session.notices)
    reporter.result(document, lines)


def _list_sessions(context: Context, state: StateFile) -> int:
    records = sorted(state.records().values(), key=lambda record: record.created_at)
    for record in records:
        document = {
            "id": record.id,
            "name": record.name,
            "version": record.version,
            "status": record.status,
            "stage_url": record.stage_url,
            "repository_url": record.repository_url,
            "created_at": record.created_at,
        }
        line = f"{record.id}  {record.name} {record.version}  {record.status}  {record.created_at}"
        context.reporter.result(document, [line])
    if not records:
        context.reporter.info("no sessions")
    return EXIT_OK


# -- audit ----------------------------------------------------------------------------------


async def audit_command(context: Context) -> int:
    args = context.args
    async with context.http(None) as http:
        credentials = await _authenticated(context, http)
        client = UploadClient(
            credentials.repository_url, authorization=credentials.authorization, http=http
        )
        events: list[AuditEvent] = []
        cursor: str | None = None
        while len(events) < args.limit:
            page = await client.audit_page(
                project=args.project,
                since=args.since,
                cursor=cursor,
                limit=min(args.limit - len(events), 1000),
            )
            events += page.events
            cursor = page.next
            if cursor is None:
                break
    if context.reporter.json_mode:
        for event in events:
            print(event.model_dump_json(exclude_none=True), flush=True)
    elif events:
        from rich.console import Console

        Console(soft_wrap=False).print(events_table(events))
    else:
        context.reporter.info("no events")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the client commands on their own (``python -m gateway.client.cli``)."""
    parser = argparse.ArgumentParser(prog="upload-gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands)
    args = parser.parse_args(argv)
    return int(args.client_main(args))


if __name__ == "__main__":
    sys.exit(main())
