"""The one lease: live until its time, free for anyone after, always for its holder."""

from __future__ import annotations

from datetime import timedelta

from gateway.domain import clock
from gateway.domain.lease import RELEASED, Lease, granted, lapsed


def test_a_granted_lease_is_live_until_it_runs_out() -> None:
    now = clock.now()
    lease = granted("a", timedelta(seconds=60), now)
    assert lease.is_live(now)
    assert not lease.is_live(now + timedelta(seconds=60))
    assert lease.may_be_taken_by("a", now)
    assert not lease.may_be_taken_by("b", now)
    assert lease.may_be_taken_by("b", now + timedelta(seconds=61))


def test_a_lapsed_or_released_lease_is_free() -> None:
    assert not lapsed("a").is_live()
    assert lapsed("a").may_be_taken_by("b")
    assert not RELEASED.is_live()
    assert Lease(None, None).may_be_taken_by("anyone")
