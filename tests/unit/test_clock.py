from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.domain.clock import extended_expiry, now, rfc3339

T0 = datetime(2030, 8, 1, 12, 0, 0, tzinfo=UTC)


def test_rfc3339_is_utc_whole_seconds_with_z() -> None:  # R-G8
    moment = datetime(2030, 8, 1, 14, 0, 0, 987654, tzinfo=UTC)
    assert rfc3339(moment) == "2030-08-01T14:00:00Z"
    assert now().microsecond == 0


def test_extension_adds_to_current_expiry() -> None:  # R-P10
    assert extended_expiry(T0, T0 - timedelta(days=1), 3600, 30 * 86400) == T0 + timedelta(hours=1)


def test_extension_is_capped_by_max_lifetime() -> None:
    created = T0 - timedelta(days=29)
    capped = extended_expiry(T0, created, 10 * 86400, 30 * 86400)
    assert capped == created + timedelta(days=30)


def test_extension_never_moves_expiry_earlier() -> None:
    created = T0 - timedelta(days=40)  # already past the ceiling (e.g. max_lifetime lowered)
    assert extended_expiry(T0, created, 3600, 30 * 86400) == T0
    assert extended_expiry(T0, created, 0, 30 * 86400) == T0
