"""De-duplication: has this partition delivered this ``event_id`` before, recently enough?

In: one stamped batch of one partition (``event_id``, ``ts`` and the
``watermark`` each event met) and :class:`SeenIds`, the ids the partition
delivered within the horizon. Out: kept events and duplicates.

An event is a duplicate when an earlier event of its partition had the same
``event_id`` and a time no older than ``horizon`` before the newest time the
partition had delivered when the event arrived (its ``watermark`` plus the
lateness). That depends only on earlier events, so it is the same whatever
the batching; events without an ``event_id`` are never duplicates.

Cost: a batch is checked against what is remembered without touching all of
it. Ids are kept as *generations*, one per batch (merged when they pile up),
each sorted by a 64-bit hash of the id with the newest time of each id; a
batch's hashes are looked up with a binary search in each generation
(``numpy.searchsorted``: no hash table is built per batch, as ``is_in`` over
everything remembered would), and only hits are compared as text, so a hash
collision can never make a duplicate. A generation leaves once all its ids
are older than the horizon. Snapshots keep the ids and times, not the
hashes (Polars' hash may change between versions): a resumed run hashes again.

>>> seen = SeenIds()
>>> events = pl.DataFrame({"event_id": ["a", "b", "a", None, None], "ts": [1, 2, 3, 4, 5],
...                        "watermark": [0, 1, 2, 3, 4]})
>>> _ = seen.deduplicate(pl.DataFrame({"event_id": ["b"], "ts": [0], "watermark": [0]}), 100, 0, 0)
>>> kept, dups = seen.deduplicate(events, 100, 0, 5)
>>> kept["ts"].to_list(), dups["ts"].to_list()
([1, 4, 5], [2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

_MERGE_AFTER = 8  # generations before the oldest are merged into one
_SEED = 0x5EED


@dataclass
class _Generation:
    """Distinct ids of some batches, sorted by hash, with each id's newest time."""

    hashes: np.ndarray  # uint64, sorted
    times: np.ndarray  # int64, aligned
    ids: pl.Series  # String, aligned
    newest: int

    @classmethod
    def of(cls, ids: pl.Series, times: np.ndarray) -> _Generation:
        """A generation of (id, time) pairs, ids possibly repeated (each keeps its newest time)."""
        frame = pl.DataFrame({"id": ids, "ts": times}).group_by("id").agg(pl.col("ts").max())
        hashes = frame["id"].hash(_SEED).to_numpy()
        order = np.argsort(hashes, kind="stable")
        ts = frame["ts"].to_numpy()[order]
        return cls(hashes[order], ts, frame["id"].gather(order), int(ts.max()) if ts.size else -(2**62))

    def __getstate__(self) -> dict[str, Any]:
        return {"ids": self.ids, "times": self.times}  # hashes are computed again when resumed

    def __setstate__(self, state: dict[str, Any]) -> None:
        again = _Generation.of(state["ids"], state["times"])
        self.__dict__.update(again.__dict__)


class SeenIds:
    """The ids one partition delivered within the horizon; see the module docstring."""

    def __init__(self) -> None:
        self.generations: list[_Generation] = []

    @property
    def size(self) -> int:
        return sum(g.hashes.size for g in self.generations)

    def copy(self) -> SeenIds:
        other = SeenIds()
        other.generations = list(self.generations)  # generations never change once made
        return other

    def deduplicate(self, stamped: pl.DataFrame, horizon_ms: int, lateness_ms: int, max_ts: int | None
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(kept events, duplicates) of one stamped batch; remembers its ids. ``max_ts``: the partition's
        newest time after the batch."""
        present = stamped["event_id"].is_not_null()
        rows = np.flatnonzero(present.to_numpy()) if present.null_count() or not present.all() else None
        with_id = stamped if rows is None else stamped[rows]
        if not with_id.height:
            return stamped, stamped.clear()
        ids, ts = with_id["event_id"], with_id["ts"].to_numpy()
        hashes = ids.hash(_SEED).to_numpy()
        earlier = self._earlier(ids, hashes)  # newest earlier time of each id, remembered (or None: -inf)
        earlier = np.maximum(earlier, _earlier_in_batch(ids, hashes, ts))
        reach = with_id["watermark"].to_numpy() + lateness_ms - horizon_ms
        duplicate = earlier >= reach
        self._remember(ids, ts, horizon_ms, max_ts)
        if not duplicate.any():
            return stamped, stamped.clear()
        positions = np.flatnonzero(duplicate) if rows is None else rows[duplicate]
        mask = np.zeros(stamped.height, dtype=bool)
        mask[positions] = True
        return stamped.filter(pl.Series(~mask)), stamped.filter(pl.Series(mask))

    def _earlier(self, ids: pl.Series, hashes: np.ndarray) -> np.ndarray:
        """The newest remembered time of each id (a very old time where none)."""
        earlier = np.full(hashes.size, np.iinfo(np.int64).min, dtype=np.int64)
        for generation in self.generations:
            found = np.searchsorted(generation.hashes, hashes)
            inside = found < generation.hashes.size
            hit = np.zeros(hashes.size, dtype=bool)
            hit[inside] = generation.hashes[found[inside]] == hashes[inside]
            if not hit.any():
                continue
            where = np.flatnonzero(hit)
            same = (generation.ids.gather(found[where]) == ids.gather(where)).to_numpy()  # hashes are not proof
            where = where[same]
            earlier[where] = np.maximum(earlier[where], generation.times[found[where]])
        return earlier

    def _remember(self, ids: pl.Series, ts: np.ndarray, horizon_ms: int, max_ts: int | None) -> None:
        self.generations.append(_Generation.of(ids, ts))
        cutoff = max_ts - horizon_ms if max_ts is not None else np.iinfo(np.int64).min
        self.generations = [g for g in self.generations if g.newest >= cutoff]
        if len(self.generations) > _MERGE_AFTER:
            # Merge the older half, leaving out ids older than the horizon: lookups stay few, what is
            # remembered stays within the horizon, and merging costs in proportion to what is merged.
            half = len(self.generations) // 2
            old = self.generations[:half]
            times = np.concatenate([g.times for g in old])
            fresh = times >= cutoff
            ids = pl.concat([g.ids for g in old]).filter(pl.Series(fresh))
            self.generations = [_Generation.of(ids, times[fresh]), *self.generations[half:]]


def _earlier_in_batch(ids: pl.Series, hashes: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """For each row, the newest time of an earlier row of the batch with the same id (very old where none)."""
    none = np.full(hashes.size, np.iinfo(np.int64).min, dtype=np.int64)
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    repeated = sorted_hashes[1:] == sorted_hashes[:-1]
    if not repeated.any():  # the usual case: no id twice in a batch
        return none
    # Rows whose hash occurs more than once: exact, by id, with Polars (rare).
    involved = np.zeros(hashes.size, dtype=bool)
    involved[order[1:][repeated]] = True
    involved[order[:-1][repeated]] = True
    rows = np.flatnonzero(involved)
    frame = pl.DataFrame({"id": ids.gather(rows), "ts": ts[rows]})
    previous = frame.select(pl.col("ts").cum_max().shift(1).over("id").fill_null(np.iinfo(np.int64).min))
    none[rows] = previous.to_series().to_numpy()
    return none
