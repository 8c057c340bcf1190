"""Which files of a failed publish are, or may be, on the index: their filenames stay
reserved for good, the others' reservations go (R-P8). When in doubt a file counts as on the
index: a reservation kept is safe, one dropped for a file on the index is not."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.domain.records import PublishingSession
from gateway.publish.index_listings import IndexListings


@dataclass
class Reach:
    """The files of a publish attempt that are, or may be, on the index, as far as this
    process saw the attempt: so that a failure releases the reservations of the others only
    (R-P8). A post counts from the moment it begins (one cut short may have landed) until
    the index is known to have refused it."""

    complete: bool = False  # this process saw every post since the index was listed
    listed: set[str] = field(default_factory=set)  # journaled, or listed by the index
    begun: set[str] = field(default_factory=set)  # posted by this run

    def files(self) -> set[str]:
        return self.listed | self.begun


async def maybe_on_index(
    reach: Reach | None,
    listings: IndexListings,
    current: PublishingSession | None,
    attempt: str,
    filenames: list[str],
) -> set[str]:
    """The files of failed publish ``attempt`` that are, or may be, on the index; ``reach``:
    what this process saw of it, ``current``: the session as read before it ends."""
    if reach is not None and reach.complete:
        return reach.files()
    # This process did not see every post of the attempt (it took over a journal whose
    # worker died): what the journal confirmed, and what the index lists now; every file
    # when the index does not answer.
    if current is None:
        return set(filenames)
    listing = await listings.now(current.name)
    if listing is None:
        return set(filenames)
    journal = current.publish
    confirmed = journal.confirmed if journal is not None and journal.attempt == attempt else []
    begun = reach.files() if reach is not None else set()
    return set(confirmed) | begun | (set(filenames) & set(listing))
