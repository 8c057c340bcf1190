"""Jepsen-style reliability testing (R-W12): a workload of concurrent publishers, a nemesis of
restarts, kills, a lost storage node and latency spikes, and a checker of invariants over the
whole history, on the cluster of tests/cluster. ``tests/chaos/test_chaos.py`` is the short
run of ``make test``; ``python -m tests.chaos --minutes 10`` the long one (docs/reliability.md).
"""
