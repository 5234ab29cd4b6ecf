"""De-duplication: has this partition delivered this ``event_id`` before, recently enough?

In: one stamped batch of one partition (``event_id``, ``ts`` and the
``watermark`` each event met) and :class:`SeenIds`, the ids the partition
delivered within the horizon. Out: kept events and duplicates.

An event is a duplicate when an earlier event of its partition had the same
``event_id`` and a time no older than ``horizon`` before the newest time the
partition had delivered when the event arrived (its ``watermark`` plus the
lateness). That depends only on earlier events, so it is the same whatever
the batching; events without an ``event_id`` are never duplicates.

Cost: a batch is checked against everything remembered without building a
hash table of it, as ``is_in`` over an hour of ids would, per batch. What is
remembered is one sorted index of 64-bit id hashes (with each entry's time
and where its id is kept); a batch's hashes, sorted, are found in it with
one binary search and inserted with one merge (``numpy``: memory moves, no
Python per id); the sort and the search serve both the look-up and the
insert. Only hash hits are compared as text, so a collision never makes a
duplicate. Ids are kept per batch (a *generation*), which leaves as a whole
once every id in it is older than the horizon: not at once, but when such
generations hold a quarter of the index (one filtering pass then, instead
of one per batch). An id older than the horizon can never make a duplicate
again (the comparison is with the event's own horizon), so keeping it a
little longer changes nothing but memory, at most a third more. Snapshots
keep the ids and times, not the hashes (Polars' hash may change between
versions): a resumed run hashes them again.

>>> seen = SeenIds()
>>> events = pl.DataFrame({"event_id": ["a", "b", "a", None, None], "ts": [1, 2, 3, 4, 5],
...                        "watermark": [0, 1, 2, 3, 4]})
>>> _ = seen.deduplicate(pl.DataFrame({"event_id": ["b"], "ts": [0], "watermark": [0]}), 100, 0, 0)
>>> kept, dups = seen.deduplicate(events, 100, 0, 5)
>>> kept["ts"].to_list(), dups["ts"].to_list()
([1, 4, 5], [2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

_SEED = 0x5EED
_NEVER = np.iinfo(np.int64).min
_ROWS = 1 << 32  # rows per generation in ``where`` (a batch is far smaller)


@dataclass
class _Generation:
    """The ids of one batch (in batch order) and their times; ``newest`` is the largest."""

    ids: pl.Series
    times: np.ndarray
    newest: int


@dataclass
class SeenIds:
    """The ids one partition delivered within the horizon; see the module docstring."""

    generations: dict[int, _Generation] = field(default_factory=dict)
    next_generation: int = 0
    # The index, sorted by hash: each entry's hash, time, and where its id is (generation << 32 | row).
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    where: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def size(self) -> int:
        return int(self.hashes.size)

    def copy(self) -> SeenIds:
        """A snapshot (the arrays are replaced, never changed in place, so sharing them is safe)."""
        return SeenIds(dict(self.generations), self.next_generation, self.hashes, self.times, self.where)

    def __getstate__(self) -> dict[str, Any]:
        return {"generations": self.generations, "next_generation": self.next_generation}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]
        self.next_generation = state["next_generation"]
        for number, generation in sorted(state["generations"].items()):
            self._insert(number, generation, *self._placed(generation.ids))

    def deduplicate(self, stamped: pl.DataFrame, horizon_ms: int, lateness_ms: int, max_ts: int | None
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(kept events, duplicates) of one stamped batch; remembers its ids. ``max_ts``: the partition's
        newest time after the batch."""
        present = stamped["event_id"].is_not_null()
        rows = None if present.all() else np.flatnonzero(present.to_numpy())
        with_id = stamped if rows is None else stamped[rows]
        if not with_id.height:
            return stamped, stamped.clear()
        ids, ts = with_id["event_id"], with_id["ts"].to_numpy()
        order, sorted_hashes, found = self._placed(ids)
        earlier = np.maximum(self._earlier(ids, order, sorted_hashes, found),
                             _earlier_in_batch(ids, order, sorted_hashes, ts))
        duplicate = earlier >= with_id["watermark"].to_numpy() + lateness_ms - horizon_ms
        number = self.next_generation
        self.next_generation += 1
        self._insert(number, _Generation(ids, ts, int(ts.max())), order, sorted_hashes, found)
        if max_ts is not None:
            self._forget(max_ts - horizon_ms)
        if not duplicate.any():
            return stamped, stamped.clear()
        positions = np.flatnonzero(duplicate) if rows is None else rows[duplicate]
        mask = np.zeros(stamped.height, dtype=bool)
        mask[positions] = True
        return stamped.filter(pl.Series(~mask)), stamped.filter(pl.Series(mask))

    def _placed(self, ids: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ids' order by hash, their hashes in that order, and where each lands in the index as it is.

        Unstable: ids of equal hashes need no order among them (every entry of a hash is looked at).
        """
        hashes = ids.hash(_SEED).to_numpy()
        order = np.argsort(hashes)
        sorted_hashes = hashes[order]
        return order, sorted_hashes, np.searchsorted(self.hashes, sorted_hashes)

    def _earlier(self, ids: pl.Series, order: np.ndarray, sorted_hashes: np.ndarray, found: np.ndarray
                 ) -> np.ndarray:
        """The newest remembered time of each row's id (``_NEVER`` where none)."""
        earlier = np.full(sorted_hashes.size, _NEVER, dtype=np.int64)
        if not self.hashes.size:
            return earlier
        inside = found < self.hashes.size
        hit = np.zeros(sorted_hashes.size, dtype=bool)
        hit[inside] = self.hashes[found[inside]] == sorted_hashes[inside]
        for at in np.flatnonzero(hit):  # rare: an id seen before (or a hash collision)
            row = int(order[at])
            entry = int(found[at])
            while entry < self.hashes.size and self.hashes[entry] == sorted_hashes[at]:
                number, index = divmod(int(self.where[entry]), _ROWS)
                if self.generations[number].ids[index] == ids[row]:  # a hash is not proof
                    earlier[row] = max(earlier[row], int(self.times[entry]))
                entry += 1
        return earlier

    def _insert(self, number: int, generation: _Generation, order: np.ndarray, sorted_hashes: np.ndarray,
                found: np.ndarray) -> None:
        """File a generation's ids in the index: one merge of sorted arrays (memory moves only)."""
        self.generations[number] = generation
        at = found + np.arange(sorted_hashes.size)  # where each lands in the merged index
        old = np.ones(self.hashes.size + sorted_hashes.size, dtype=bool)
        old[at] = False

        def merged(existing: np.ndarray, added: np.ndarray) -> np.ndarray:
            out = np.empty(existing.size + added.size, dtype=existing.dtype)
            out[at], out[old] = added, existing
            return out

        self.hashes = merged(self.hashes, sorted_hashes)
        self.times = merged(self.times, generation.times[order])
        self.where = merged(self.where, order.astype(np.int64) + number * _ROWS)

    def _forget(self, cutoff: int) -> None:
        """Drop the generations older than ``cutoff`` once they hold a quarter of the index."""
        stale = [n for n, g in self.generations.items() if g.newest < cutoff]
        if 4 * sum(self.generations[n].times.size for n in stale) < self.hashes.size:
            return
        for n in stale:
            del self.generations[n]
        keep = ~np.isin(self.where // _ROWS, np.array(stale, dtype=np.int64))
        self.hashes, self.times, self.where = self.hashes[keep], self.times[keep], self.where[keep]


def _earlier_in_batch(ids: pl.Series, order: np.ndarray, sorted_hashes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """For each row, the newest time of an earlier row of the batch with the same id (``_NEVER`` where none)."""
    earlier = np.full(sorted_hashes.size, _NEVER, dtype=np.int64)
    repeated = sorted_hashes[1:] == sorted_hashes[:-1]
    if not repeated.any():  # the usual case: no id twice in a batch
        return earlier
    # Rows whose hash occurs more than once: exact, by id, with Polars (rare).
    involved = np.zeros(sorted_hashes.size, dtype=bool)
    involved[order[1:][repeated]] = True
    involved[order[:-1][repeated]] = True
    rows = np.flatnonzero(involved)
    frame = pl.DataFrame({"id": ids.gather(rows), "ts": ts[rows]})
    previous = frame.select(pl.col("ts").cum_max().shift(1).over("id").fill_null(_NEVER))
    earlier[rows] = previous.to_series().to_numpy()
    return earlier
