"""Timestamps as PEP 694 wants them: UTC, whole seconds, ``Z`` (R-G8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def rfc3339(moment: datetime) -> str:
    # isoformat is a third of strftime's cost, and this runs for every timestamp rendered.
    return moment.astimezone(UTC).isoformat(timespec="seconds").removesuffix("+00:00") + "Z"


def extended_expiry(
    current: datetime, created: datetime, extend_for: int, max_lifetime: int
) -> datetime:
    """The new ``expires-at`` for an extension request (R-P10).

    Capped at ``created + max_lifetime`` and never earlier than ``current``: a refused or
    capped extension still succeeds and simply reports the current expiry.
    """
    ceiling = created + timedelta(seconds=max_lifetime)
    # Capped first: a huge ``extend-for`` (JSON integers are unbounded) would overflow datetime.
    wanted = current + timedelta(seconds=min(extend_for, max_lifetime))
    return max(current, min(wanted, ceiling))
