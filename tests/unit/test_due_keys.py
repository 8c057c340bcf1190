"""The sweep's due index: keys that sort by time (R-W9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from gateway.store import keys


def test_a_due_key_names_its_moment_and_session() -> None:
    moment = datetime(2026, 12, 1, 2, 3, 4, tzinfo=UTC)
    key = keys.due(moment, "abc")
    assert key == "due/20261201020304/abc"
    assert keys.due_parts(key) == (moment, "abc")


def test_due_keys_sort_by_time_whatever_the_session() -> None:
    start = datetime(2026, 12, 31, 23, 59, 58, tzinfo=UTC)
    moments = [start + timedelta(seconds=n) for n in range(4)]
    ordered = [keys.due(moment, sid) for moment, sid in zip(moments, "zyxw", strict=True)]
    assert sorted(ordered) == ordered


def test_a_due_key_is_in_utc() -> None:
    elsewhere = datetime(2026, 12, 1, 4, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert keys.due(elsewhere, "s") == "due/20261201020000/s"


def test_other_keys_are_not_due_entries() -> None:
    assert keys.due_parts("due/not-a-time/s") is None
