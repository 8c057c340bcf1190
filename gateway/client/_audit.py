"""The gateway's audit journal (not Upload 2.0: this gateway's own, docs/audit.md), read a
page at a time."""

from __future__ import annotations

from urllib.parse import urljoin

from yarl import URL

from gateway.client._errors import ClientError, ProblemError
from gateway.client._transport import Transport
from gateway.protocol.audit import AuditPage


async def read_audit_page(
    transport: Transport, api_url: str, query: dict[str, str | None]
) -> AuditPage:
    """The page of audit events that ``query`` selects (its empty values left out)."""
    url = URL(urljoin(api_url, "audit")).with_query(
        {name: value for name, value in query.items() if value}
    )
    answer = await transport.request("GET", str(url))
    if answer.status >= 400:
        raise ProblemError.from_answer(answer)
    if answer.status != 200 or answer.media_type != "application/json":
        raise ClientError(f"{answer.url} answered {answer.status} {answer.media_type}")
    return AuditPage.model_validate_json(answer.body)
