"""The keys of file summary entries: beside the session record, so that one listing of
``keys.session_listing`` finds both; the layout of older gateways still parsed."""

from __future__ import annotations

from gateway.store import keys

FIELDS = ("fid", 3, 1_700_000_000_000_000, "completed", 1, "p-1.0.tar.gz")


def test_an_entry_is_beside_its_session_record_and_found_by_one_listing() -> None:
    entry = keys.file_summary("sid", FIELDS)
    assert entry == "sessions/sid.shown/fid.000003.1700000000000000.completed.1.p-1.0.tar.gz"
    listing = keys.session_listing("sid")
    assert entry.startswith(listing)
    assert keys.session("sid").startswith(listing)
    assert keys.file_summary_fields(entry) == FIELDS


def test_an_entry_is_neither_a_session_record_nor_purged_with_the_record() -> None:
    entry = keys.file_summary("sid", FIELDS)
    assert not keys.is_session_record(entry)
    assert keys.is_session_record(keys.session("sid"))
    # What the settle purges: the data (older entries included) and the entries.
    purged = (keys.session_data("sid"), keys.file_summaries("sid"))
    assert any(entry.startswith(prefix) for prefix in purged)
    assert not any(keys.session("sid").startswith(prefix) for prefix in purged)
    older = keys.older_file_summaries("sid") + "fid.000001.1.pending.0.p-1.0.tar.gz"
    assert any(older.startswith(prefix) for prefix in purged)


def test_the_older_layout_is_parsed_and_other_keys_are_not_entries() -> None:
    older = (
        keys.older_file_summaries("sid") + "fid.000003.1700000000000000.completed.1.p-1.0.tar.gz"
    )
    assert keys.file_summary_fields(older) == FIELDS
    for other in (
        keys.session("sid"),
        keys.file_upload("sid", "fid"),
        "sessions/sid/files/fid.000003.1.completed.1.x.whl",
        "sessions/sid.shown/fid.x.1.completed.1.x.whl",
    ):
        assert keys.file_summary_fields(other) is None, other
