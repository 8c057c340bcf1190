"""The audit journal's pure parts: client addresses through trusted proxies, time-sortable ids,
the reader's query, the CLI's table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import ip_network

import pytest
from pydantic import ValidationError

from gateway.api.audit import client_address
from gateway.client.audit import events_table, principal_text
from gateway.protocol.audit import AuditEvent, AuditPrincipal, AuditQuery
from gateway.store.audit import EVENT_ID, event_id, moment_of

PROXIES = [ip_network("10.0.0.0/8"), ip_network("::1/128")]


@pytest.mark.parametrize(
    ("remote", "forwarded", "expected"),
    [
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),  # not a proxy: its header is not believed
        ("10.0.0.2", "203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "198.51.100.66, 203.0.113.9, 10.0.0.7", "203.0.113.9"),  # spoofed first hop
        ("10.0.0.2", None, "10.0.0.2"),  # a proxy that says nothing
        ("10.0.0.2", "10.0.0.3, 10.0.0.4", "10.0.0.3"),  # only proxies: the farthest one
        ("::1", "2001:db8::5", "2001:db8::5"),
        ("10.0.0.2", "garbage, 203.0.113.9", "203.0.113.9"),
        ("10.0.0.2", "203.0.113.9, garbage", "garbage"),  # what the trusted proxy said
    ],
)
def test_client_address_walks_trusted_proxies_from_the_right(
    remote: str, forwarded: str | None, expected: str
) -> None:
    assert client_address(remote, forwarded, PROXIES) == expected


def test_nothing_is_trusted_by_default() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", []) == "127.0.0.1"


def test_event_ids_sort_newest_first_within_a_day_and_give_back_their_time() -> None:
    morning = datetime(2026, 11, 3, 0, 0, 0, 1, tzinfo=UTC)
    moments = [morning + timedelta(hours=h, microseconds=7) for h in range(24)]
    ids = [event_id(m) for m in moments]
    assert all(EVENT_ID.match(i) for i in ids)
    assert sorted(ids) == list(reversed(ids))
    assert [moment_of("2026-11-03", i) for i in ids] == moments
    assert event_id(morning, "expired:abc") == event_id(morning, "expired:abc")
    assert event_id(morning) != event_id(morning)


def test_query_accepts_dates_times_and_names_and_refuses_the_rest() -> None:
    query = AuditQuery.model_validate({"project": "Acme_Widgets", "since": "2026-11-01"})
    assert query.project == "acme-widgets"
    assert query.since == datetime(2026, 11, 1, tzinfo=UTC)
    assert AuditQuery.model_validate({"since": "2026-11-01T10:00:00+01:00"}).since == datetime(
        2026, 11, 1, 9, tzinfo=UTC
    )
    for bad in (
        {"limit": "0"},
        {"cursor": "x"},
        {"project": "-bad-"},
        {"since": "soon"},
        {"a": "b"},
    ):
        with pytest.raises(ValidationError):
            AuditQuery.model_validate(bad)


def test_cli_names_the_trusted_publisher_and_its_workflow() -> None:
    event = AuditEvent(
        id="00000000001-00000000",
        time=datetime(2026, 11, 3, tzinfo=UTC),
        action="session.published",
        outcome="ok",
        project="acme-widgets",
        version="2.1",
        principal=AuditPrincipal(
            id="oidc:x",
            name="acme/widgets",
            kind="oidc",
            issuer="https://ci",
            claims={"repository": "acme/widgets", "workflow": "release", "ref": "refs/tags/v2.1"},
        ),
    )
    assert principal_text(event) == "acme/widgets (oidc: acme/widgets release refs/tags/v2.1)"
    assert events_table([event]).row_count == 1
