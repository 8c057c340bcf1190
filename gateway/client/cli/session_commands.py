"""``upload-gateway session status|publish|cancel|extend ID`` and ``session list``: a session
staged with ``publish --stage`` (by local id or URL), or a release's session (NAME==VERSION)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from gateway.client.api import ClientError, ProblemError, SessionView, UploadClient
from gateway.client.cli.context import EXIT_OK, EXIT_REFUSED, Context, authenticated
from gateway.client.cli.output import Reporter, error_document
from gateway.client.local import LocalCheckError
from gateway.client.state import SessionRecord, StateError, StateFile, local_id


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
        credentials = await authenticated(
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
            on_retry=context.reporter.warn,
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
    context: Context, client: UploadClient, session: SessionView, lid: str
) -> SessionView:
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
        credentials = await authenticated(context, http)
        client = UploadClient(
            credentials.repository_url, authorization=credentials.authorization, http=http
        )
        try:
            if context.args.session_command == "approve":  # an approver may not create one
                session = await client.release_session(name, version)
            else:
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
    session: SessionView,
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
        "gates": session.gates,
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
    lines.extend(_gate_lines(session.gates))
    reporter.result(document, lines)


def _gate_lines(gates: dict[str, Any] | None) -> list[str]:
    """Who approved and what the release still lacks before publish (R-W11)."""
    if gates is None:
        return []
    approved = ", ".join(a["principal"] for a in gates["approved-by"]) or "nobody"
    lines = [f"  approvals: {len(gates['approved-by'])} of {gates['approvals-required']}"]
    if gates["approvals-required"] or gates["approved-by"]:
        lines[0] += f" (approved by: {approved})"
    lines += [f"  missing: {gap['source']}: {gap['message']}" for gap in gates["missing"]]
    return lines


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
