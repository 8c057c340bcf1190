"""``upload-gateway audit``: the gateway's audit journal as a table (or JSON lines)."""

from __future__ import annotations

from typing import Any

from gateway.protocol.audit import AuditEvent


def principal_text(event: AuditEvent) -> str:
    """Who, and for a trusted publisher from which repository, workflow and ref."""
    principal = event.principal
    if principal is None:
        return "-"
    text = principal.name or principal.id
    claims = principal.claims
    origin = [claims[n] for n in ("repository", "workflow", "ref") if claims.get(n)]
    if principal.kind == "oidc":
        text = f"{text} (oidc: {' '.join(origin) or principal.issuer or ''})".replace(" )", ")")
    elif principal.kind not in ("config", "gateway"):
        text = f"{text} ({principal.kind})"
    return text


def files_text(event: AuditEvent) -> str:
    return "\n".join(
        f"{f.filename} sha256:{f.sha256[:12]}…" if f.sha256 else f.filename for f in event.files
    )


def events_table(events: list[AuditEvent]) -> Any:
    from rich.table import Table  # rich is slow to import; only this command needs it

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("time (UTC)", "action", "outcome", "release", "files", "who", "from"):
        table.add_column(column, overflow="fold")
    for event in events:
        release = " ".join(filter(None, [event.project, event.version])) or "-"
        table.add_row(
            event.time.strftime("%Y-%m-%d %H:%M:%S"),
            event.action,
            event.outcome if not event.detail else f"{event.outcome}: {event.detail}",
            release,
            files_text(event) or "-",
            principal_text(event),
            event.client_address or "-",
        )
    return table
