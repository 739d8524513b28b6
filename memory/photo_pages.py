"""The library newest first, one page at a time, without reading every record.

`ManifestPageReader` answers from the manifest's SQLite: its `photos` table holds every indexed
photo's record, and an index on the date taken gives a page by keyset pagination (after the previous
page's last (taken, hash)), as cheap at the library's end as at its start; filters become SQL over
the record (`memory.record_sql`).

`PageReader` answers from Chroma, for what the manifest cannot: a shared Chroma server holds records
other machines indexed, and a filter SQL is not given. Chroma cannot sort, so cheap probes (ids
only, at most `need` of them) find the narrowest range of days ending at the previous page's last
day that holds enough photos, and only that range's metadata is read and sorted; its cost still
grows with the collection.

Order, for both: date taken (the `taken` text, the photo's local time), newest first, then the
content hash, so every record has one place and a page boundary falls between two records. Photos
with no date come last; reaching them through Chroma reads every record the filters let through
(the rare tail of a library).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from memory.chroma_store import ChromaStore
from memory.library_manifest import LibraryManifest
from memory.record_sql import SqlCondition

# (taken, content hash) of a page's last photo; taken is "" for a photo with no date.
Cursor = tuple[str, str]
Record = tuple[str, dict[str, Any]]
# The first window: a library is often browsed for what was added lately.
FIRST_SPAN_DAYS = 8
# No photo predates photography; a window reaching this far is the whole past.
EARLIEST = date(1826, 1, 1)
# Above any real date: photos whose file date is in the future still come first.
LATEST = date(9999, 12, 31)


def day_number(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def day_of(number: int) -> date:
    return date(number // 10000, number // 100 % 100, number % 100)


def sort_key(record: Record) -> Cursor:
    taken = record[1].get("taken")
    return (taken if isinstance(taken, str) else "", record[0])


def _and(*clauses: dict[str, Any] | None) -> dict[str, Any] | None:
    present = [c for c in clauses if c]
    if not present:
        return None
    return present[0] if len(present) == 1 else {"$and": present}


def _days(low: date | None, high: date) -> dict[str, Any]:
    upper = {"taken_day": {"$lte": day_number(high)}}
    return upper if low is None else {"$and": [{"taken_day": {"$gte": day_number(low)}}, upper]}


@dataclass
class PageReader:
    """Reads pages of one collection. `to_hits(records, k)` turns sorted records into at most k
    results (dropping records whose files are gone), as the index does for a search."""

    store: ChromaStore
    collection: Any
    where: dict[str, Any] | None

    def _count(self, low: date | None, high: date, need: int) -> int:
        return self.store.count_matching(self.collection, _and(self.where, _days(low, high)), need)

    def _floor(self, high: date, need: int) -> date | None:
        """The latest day `low` such that [low, high] holds at least `need` photos; None when the
        whole past up to `high` holds fewer (then it is read whole)."""
        span = FIRST_SPAN_DAYS
        # Windows grow back from today (or `high`, when earlier); days after it are in every window.
        anchor = min(high, date.today() + timedelta(days=1))
        too_late = anchor + timedelta(days=1)  # an empty range, when `high` is the anchor
        while True:
            low = anchor - timedelta(days=span)
            if low <= EARLIEST:
                return None
            if self._count(low, high, need) >= need:
                break
            too_late, span = low, span * 2
        # Narrow down: `low` holds enough, `too_late` does not; about log2(span) probes.
        while (too_late - low).days > 1:
            middle = low + (too_late - low) / 2
            if self._count(middle, high, need) >= need:
                low = middle
            else:
                too_late = middle
        return low

    def _records(self, low: date | None, high: date, after: Cursor | None) -> list[Record]:
        records = self.store.matching(self.collection, _and(self.where, _days(low, high)))
        if after is not None:
            records = [r for r in records if sort_key(r) < after]
        return sorted(records, key=sort_key, reverse=True)

    def _undated(self, after: Cursor | None) -> list[Record]:
        records = [r for r in self.store.matching(self.collection, self.where) if "taken_day" not in r[1]]
        if after is not None:
            records = [r for r in records if sort_key(r) < after]
        return sorted(records, key=sort_key, reverse=True)

    def page(
        self, k: int, after: Cursor | None, to_hits: Callable[[list[Record], int], list[Any]]
    ) -> list[Any]:
        """Up to k results after `after` (None: from the newest), in order."""
        found: list[Any] = []
        if after is None or after[0]:
            high = LATEST if after is None or not after[0][:10] else _taken_day(after[0])
            while len(found) < k:
                need = k - len(found)
                low = self._floor(high, need)
                found += to_hits(self._records(low, high, after), need)
                if low is None:
                    break
                high = low - timedelta(days=1)
        if len(found) < k:
            found += to_hits(self._undated(after), k - len(found))
        return found


@dataclass
class ManifestPageReader:
    """Reads pages from the manifest: the same order and `page` contract as `PageReader`."""

    manifest: LibraryManifest
    collection_name: str
    where: SqlCondition | None

    def page(
        self, k: int, after: Cursor | None, to_hits: Callable[[list[Record], int], list[Any]]
    ) -> list[Any]:
        """Up to k results after `after` (None: from the newest), in order."""
        found: list[Any] = []
        while len(found) < k:
            need = k - len(found)
            records = self.manifest.newest_photos(self.collection_name, after, need, self.where)
            found += to_hits(records, need)
            if len(records) < need:
                break
            # `to_hits` drops a record whose files went meanwhile: continue after the last one read.
            after = sort_key(records[-1])
        return found


def _taken_day(taken: str) -> date:
    try:
        return date.fromisoformat(taken[:10])
    except ValueError:
        return LATEST  # an odd stored text: start from the top rather than skip anything
