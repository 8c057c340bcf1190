"""``upload-gateway publish FILES...``: one publishing session per release (Upload 2.0),
files uploaded into it (:mod:`.publish_files`), then published or, with ``--stage``, left
open; against an index without Upload 2.0, the legacy API (:mod:`.publish_legacy`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from gateway.client.api import ClientError, NotUpload2Error, SessionView, UploadClient
from gateway.client.cli.context import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXTEND_BY,
    Context,
    authenticated,
)
from gateway.client.cli.output import describe_error
from gateway.client.cli.publish_files import ReleaseUploads
from gateway.client.cli.publish_legacy import publish_legacy
from gateway.client.cli.publish_report import Outcome, PublishReport
from gateway.client.credentials import RepositoryCredentials
from gateway.client.local import (
    LocalCheckError,
    Release,
    expand_inputs,
    group_releases,
    inspect_distributions,
)
from gateway.client.state import SessionRecord, local_id

# A session that expires sooner than this is extended before uploading (if the server can).
_EXTEND_WHEN_WITHIN = timedelta(hours=1)


async def publish_command(context: Context) -> int:
    args = context.args
    if args.stage and args.protocol == "legacy":
        raise LocalCheckError("--stage needs Upload 2.0; the legacy API publishes at once")
    paths = expand_inputs(args.files)
    async with context.http() as http:
        credentials = await authenticated(context, http)
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
        credentials: RepositoryCredentials,
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
            credentials.repository_url,
            authorization=credentials.authorization,
            http=http,
            on_retry=self.reporter.warn,  # every retry said, as a warning
        )
        self.state = context.state
        self.output = PublishReport(self.args, self.reporter, credentials)
        self.uploads = ReleaseUploads(self.args, self.reporter, self.client, self.state)
        # Sessions this command created and has not yet published: canceled on Ctrl+C.
        self.live: dict[str, tuple[SessionView, Release]] = {}

    async def execute(self) -> int:
        for release in self.releases:
            outcome = await self.release(release)
            self.output.emit(outcome)
            if outcome.error is not None:
                return EXIT_REFUSED
        return EXIT_OK

    async def release(self, release: Release) -> Outcome:
        if self.protocol in ("auto", "2"):
            try:
                session, created = await self.client.create_session(release.name, release.version)
            except NotUpload2Error as exc:
                refused = self._refuse_fallback(release, exc)
                if refused is not None:
                    return refused
                self.protocol = "legacy"
            except ClientError as exc:
                return Outcome(release, "2", "failed", error=exc)
            else:
                self.protocol = "2"
                return await self.upload2(release, session, created)
        return await publish_legacy(
            release,
            http=self.http,
            credentials=self.credentials,
            reporter=self.reporter,
            retry=self.client.retry,
            skip_existing=self.args.skip_existing,
        )

    def _refuse_fallback(self, release: Release, exc: NotUpload2Error) -> Outcome | None:
        """The failed outcome when the legacy API will not do; None to fall back to it."""
        if self.protocol == "2":
            error = ClientError(f"{exc}; --protocol 2 does not fall back")
            return Outcome(release, "2", "failed", error=error)
        if self.args.stage:
            error = ClientError(f"{exc}; cannot stage with the legacy upload API")
            return Outcome(release, "legacy", "failed", error=error)
        self.reporter.info(
            f"{self.credentials.repository_url} does not speak Upload 2.0 "
            f"(HTTP {exc.status}); falling back to the legacy upload API"
        )
        return None

    # Upload 2.0 ---------------------------------------------------------------------------

    async def upload2(self, release: Release, session: SessionView, created: bool) -> Outcome:
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
            outcome.skipped = await self.uploads.upload(session, release, lid)
        except ClientError as exc:
            return await self._failed(outcome, exc, session, created)
        if created and outcome.skipped == {dist.filename for dist in release.files}:
            # Everything is on the index already: nothing to publish, and no session to keep.
            await self._cancel(lid, session, release)
            outcome.status = "skipped"
            return outcome
        if self.args.stage:
            return await self._staged(outcome, session)
        return await self._publish(lid, release, session, outcome)

    async def _failed(
        self, outcome: Outcome, exc: ClientError, session: SessionView, created: bool
    ) -> Outcome:
        """An upload failed: report it, then cancel the session we created (unless staging)."""
        outcome.error = exc
        outcome.session = await self._refresh(session)
        self.output.report(outcome)  # before the clean-up messages
        assert outcome.local_id is not None
        await self.abandon(outcome.local_id, outcome.release, created)
        outcome.status = "canceled" if created and not self.args.stage else "open"
        return outcome

    async def _staged(self, outcome: Outcome, session: SessionView) -> Outcome:
        assert outcome.local_id is not None
        self.live.pop(outcome.local_id, None)
        outcome.session = await self._refresh(session)
        outcome.status = outcome.session.status
        self.state.update(outcome.local_id, status=outcome.status)
        return outcome

    def _remember(self, lid: str, release: Release, session: SessionView) -> None:
        """Record the session locally, so that ``session`` commands can find it later."""
        previous = self.state.records().get(lid)  # a reused session: what we completed in it
        cert, client_cert = self.context.tls_files()
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
                cert=_absolute(cert),
                client_cert=_absolute(client_cert),
                completed=previous.completed if previous is not None else {},
            )
        )

    async def _publish(
        self, lid: str, release: Release, session: SessionView, outcome: Outcome
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
                f"session {lid} is kept: retry with '{self.output.next_command('publish', lid)}' "
                f"or discard it with '{self.output.next_command('cancel', lid)}'"
            )
            return outcome
        self.live.pop(lid, None)
        outcome.session = published
        outcome.status = published.status
        self.state.update(lid, status=published.status)
        return outcome

    async def _refresh(self, session: SessionView) -> SessionView:
        try:
            return await self.client.get_session(session.url)
        except ClientError:
            return session

    async def clear_stale_files(self, session: SessionView, release: Release) -> None:
        """In a reused session, unfinished uploads of our files would block new ones (409)."""
        for dist in release.files:
            entry = session.files.get(dist.filename)
            if entry is None or entry.get("status") == "completed":
                continue
            if entry.get("status") == "processing":
                raise ClientError(f"{dist.filename} is being validated in the live session")
            self.reporter.step(f"{dist.filename}: deleting the unfinished upload in the session")
            await self.client.delete_file(entry["link"])

    async def keep_alive(self, session: SessionView) -> SessionView:
        expires = _parse_time(session.expires_at)
        if expires is None or expires - datetime.now(UTC) > _EXTEND_WHEN_WITHIN:
            return session
        if "extend" not in session.links:
            self.reporter.warn(
                f"the session expires at {session.expires_at} and cannot be extended"
            )
            return session
        return await self.client.extend_session(session, EXTEND_BY)

    async def abandon(self, lid: str, release: Release, created: bool) -> None:
        """After a failed upload: cancel the session we created, unless staging."""
        entry = self.live.pop(lid, None)
        if not created or entry is None:
            return
        if self.args.stage:
            self.reporter.info(
                f"session {lid} is left open for inspection: "
                f"'{self.output.next_command('status', lid)}' / "
                f"'{self.output.next_command('cancel', lid)}'"
            )
            return
        await self._cancel(lid, entry[0], release)

    async def _cancel(self, lid: str, session: SessionView, release: Release) -> None:
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
                    f"open; '{self.output.next_command('cancel', lid)}' discards it"
                )
            return
        self.reporter.info("interrupted: canceling the sessions this command created")
        for lid, (session, release) in list(self.live.items()):
            await self._cancel(lid, session, release)
        self.live.clear()


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
