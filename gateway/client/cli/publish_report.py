"""What ``publish`` says about each release: its :class:`Outcome` as a JSON document or as
lines, an error once, and the commands to run next for a staged session."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any

from gateway.client.api import SessionView
from gateway.client.cli.output import Reporter, error_document
from gateway.client.credentials import RepositoryCredentials
from gateway.client.local import Release


@dataclass
class Outcome:
    release: Release
    protocol: str
    status: str = "open"
    session: SessionView | None = None
    local_id: str | None = None
    error: BaseException | None = None
    reported: bool = False
    uploaded: set[str] = field(default_factory=set)  # legacy uploads that went through
    skipped: set[str] = field(default_factory=set)  # --skip-existing: already there

    def document(self) -> dict[str, Any]:
        session = self.session
        document: dict[str, Any] = {
            "id": self.local_id,
            "name": self.release.name,
            "version": self.release.version,
            "protocol": self.protocol,
            "status": self.status,
            "session_url": session.url if session is not None else None,
            "stage_url": session.stage if session is not None else None,
            "expires_at": session.expires_at if session is not None else None,
            "files": self._files(),
            "notices": session.notices if session is not None else [],
        }
        if self.error is not None:
            document["error"] = error_document(self.error)
        return document

    def _files(self) -> dict[str, dict[str, Any]]:
        session_files = self.session.files if self.session is not None else {}
        files = {}
        for dist in self.release.files:
            status = session_files.get(dist.filename, {}).get("status")
            if dist.filename in self.skipped:
                status = "skipped"
            elif status is None:
                status = "uploaded" if dist.filename in self.uploaded else "not uploaded"
            files[dist.filename] = {"status": status, "size": dist.size, "sha256": dist.sha256}
        return files


class PublishReport:
    """Prints each release's outcome: errors on stderr, results on stdout."""

    def __init__(
        self, args: argparse.Namespace, reporter: Reporter, credentials: RepositoryCredentials
    ) -> None:
        self._args = args
        self._reporter = reporter
        self._credentials = credentials

    def report(self, outcome: Outcome) -> None:
        """Print the outcome's error on stderr, once."""
        if outcome.error is None or outcome.reported:
            return
        outcome.reported = True
        release = outcome.release
        self._reporter.problem(f"{release.name} {release.version}: ", outcome.error)
        if outcome.session is not None:
            for notice in outcome.session.notices:
                self._reporter.error(f"  notice: {notice}")

    def emit(self, outcome: Outcome) -> None:
        if outcome.error is not None:
            self.report(outcome)
            self._reporter.result(outcome.document(), [])
            return
        self._reporter.result(outcome.document(), self._lines(outcome))

    def _lines(self, outcome: Outcome) -> list[str]:
        release = outcome.release
        what = f"{release.name} {release.version}"
        count = f"{len(release.files)} file{'s' if len(release.files) != 1 else ''}"
        skipped = [f"  skipped (already there): {', '.join(sorted(outcome.skipped))}"]
        if outcome.protocol == "legacy":
            lines = [f"Uploaded {what} ({count}) with the legacy upload API"]
            return lines + skipped if outcome.skipped else lines
        if outcome.status == "skipped":
            return [f"Skipped {what}: all {count} already on the index"]
        if outcome.status == "published":
            lines = [f"Published {what} ({count}) [session {outcome.local_id}]"]
            return lines + skipped if outcome.skipped else lines
        return self._staged_lines(outcome, f"Staged {what} ({count}): session {outcome.local_id}")

    def _staged_lines(self, outcome: Outcome, headline: str) -> list[str]:
        session = outcome.session
        assert session is not None
        lines = [headline]
        if session.stage:
            lines.append(f"  stage URL: {session.stage}")
            lines.append(f"  preview:   {session.stage}+preview/")  # the gateway's page
        lid = outcome.local_id or ""
        lines.append(f"  publish:   {self.next_command('publish', lid)}")
        lines.append(f"  cancel:    {self.next_command('cancel', lid)}")
        lines.append(f"  password:  {self.password_hint()}")
        return lines

    def next_command(self, action: str, lid: str) -> str:
        """The command to run next, as it must be typed: the session remembers the repository,
        username and TLS files; a password given with -p is not stored and must be given again."""
        command = f"upload-gateway session {action} {lid}"
        if self._args.state_file:
            command += f" --state-file {shlex.quote(str(self._args.state_file))}"
        if self._credentials.source == "command line":
            command += " -p PASSWORD"
        return command

    def password_hint(self) -> str:
        source = self._credentials.source
        if self._credentials.token:
            return "a new GitHub Actions OIDC token (in the same CI job)"
        if source == "command line":
            return "given with -p and not stored: give it again (or keep it in the keyring)"
        if source == "keyring":
            return "from the keyring, as now"
        if source.startswith(("UPLOAD_GATEWAY_", "TWINE_")):
            return f"from ${source}: keep it set"
        return f"from {source}, as now" if source != "none" else "none was given"
