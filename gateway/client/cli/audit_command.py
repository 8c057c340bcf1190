"""``upload-gateway audit``: the gateway's audit journal, newest first."""

from __future__ import annotations

from gateway.client.api import UploadClient
from gateway.client.audit import events_table
from gateway.client.cli.context import EXIT_OK, Context, authenticated
from gateway.protocol.audit import AuditEvent


async def audit_command(context: Context) -> int:
    args = context.args
    async with context.http(None) as http:
        credentials = await authenticated(context, http)
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
