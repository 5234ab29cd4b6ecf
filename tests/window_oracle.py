"""The windowing engine's semantics, recomputed in plain Python over whole partitions.

Written from the README's semantics table, event by event, sharing no code
with the engine:

- Screening (when asked for, as ``flows.dmp`` does): per partition, in
  order, an event before ``earliest`` is quarantined; an event more than
  ``tolerance`` ahead of the newest accepted event (every event while there
  is none) waits for the partition's next event, and is accepted if that one
  is at or after its time minus ``tolerance``, quarantined otherwise (and
  accepted if none follows). Quarantined events are not seen by anything below.
- Per partition, in partition order, an event meets the watermark
  ``max(ts of earlier events of the partition) - lateness`` (none before the
  first event).
- Dedup: an event is a duplicate when an earlier event of its partition had
  the same ``event_id`` and ``ts >= max(earlier ts) - horizon``.
- Fixed windows (``size``, ``slide``; tumbling when equal): an event belongs
  to every window ``[s, s + size)`` with ``s`` a multiple of ``slide``; it is
  late for a window when ``s + size <= watermark``, and counts in the others.
- Quality (fixed windows): each window's on-time events are reported as
  of its end; each late event, for every window it missed, and each
  duplicate, for every window its time falls in, as of the latest window
  end at or before its watermark (but not before the window's own end); a
  dead letter in the latest window holding its partition's newest event
  before it (the partition's first event when none came before; never, when
  the partition has none), as of that window's end. A report is one row per
  window and ``as_of``: ``at_close`` when ``as_of`` is the window's end,
  ``after_close`` otherwise.
- Sessions (``gap``): an event is late when ``ts + gap <= watermark``; a
  key's on-time events, in time order, start a new session when they are at
  least ``gap`` after the previous one; a session spans
  ``[first, last + gap)``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Event = dict  # ts (int ms), event_id, user_id, product_id, event_type, quantity


@dataclass
class Stamped:
    partition: str
    event: Event
    watermark: int | None
    duplicate: bool


def screen(events: Sequence[Event], tolerance_ms: int | None, earliest_ms: int | None
           ) -> tuple[list[Event], list[Event]]:
    """(accepted events in order, quarantined events) of one partition; see the module docstring."""
    accepted: list[Event] = []
    quarantined: list[Event] = []
    newest: int | None = None
    held: Event | None = None
    for event in events:
        if earliest_ms is not None and event["ts"] < earliest_ms:
            quarantined.append(event)
            continue
        if held is not None:
            if event["ts"] >= held["ts"] - tolerance_ms:
                accepted.append(held)
                newest = held["ts"] if newest is None else max(newest, held["ts"])
            else:
                quarantined.append(held)
            held = None
        if tolerance_ms is not None and (newest is None or event["ts"] > newest + tolerance_ms):
            held = event
            continue
        accepted.append(event)
        newest = event["ts"] if newest is None else max(newest, event["ts"])
    if held is not None:
        accepted.append(held)
    return accepted, quarantined


def stamp(per_partition: Mapping[str, Sequence[Event]], lateness_ms: int, horizon_ms: int | None,
          tolerance_ms: int | None = None, earliest_ms: int | None = None) -> list[Stamped]:
    out = []
    for partition, events in per_partition.items():
        events, _ = screen(events, tolerance_ms, earliest_ms)
        newest: int | None = None
        earlier: list[Event] = []
        for event in events:
            watermark = None if newest is None else newest - lateness_ms
            duplicate = (
                horizon_ms is not None
                and event["event_id"] is not None
                and newest is not None
                and any(e["event_id"] == event["event_id"] and e["ts"] >= newest - horizon_ms for e in earlier)
            )
            out.append(Stamped(partition, event, watermark, duplicate))
            earlier.append(event)
            newest = event["ts"] if newest is None else max(newest, event["ts"])
    return out


@dataclass
class Expected:
    """Result groups (``members``: window start and key -> events), late events and per-window counts."""

    members: dict[tuple, list[Event]] = field(default_factory=lambda: defaultdict(list))
    late: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)  # (event_id, missed window starts)
    late_per_window: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    duplicates_per_window: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0


def fixed_windows(stamped: list[Stamped], keys: Sequence[str], size_ms: int, slide_ms: int) -> Expected:
    expected = Expected()
    for item in stamped:
        ts = item.event["ts"]
        latest = ts - ts % slide_ms
        starts = [latest - k * slide_ms for k in range(size_ms // slide_ms)]
        if item.duplicate:
            expected.duplicates += 1
            for start in starts:
                expected.duplicates_per_window[start] += 1
            continue
        missed = sorted(s for s in starts if item.watermark is not None and s + size_ms <= item.watermark)
        for start in starts:
            if start in missed:
                expected.late_per_window[start] += 1
            else:
                expected.members[(start, *(item.event[k] for k in keys))].append(item.event)
        if missed:
            expected.late.append((item.event["event_id"], tuple(missed)))
    return expected


def sessions(stamped: list[Stamped], keys: Sequence[str], gap_ms: int) -> Expected:
    expected = Expected()
    by_key: dict[tuple, list[Event]] = defaultdict(list)
    for item in stamped:
        if item.duplicate:
            expected.duplicates += 1
            continue
        ts = item.event["ts"]
        if item.watermark is not None and ts + gap_ms <= item.watermark:
            expected.late.append((item.event["event_id"], (ts,)))
            continue
        by_key[tuple(item.event[k] for k in keys)].append(item.event)
    for key, events in by_key.items():
        events = sorted(events, key=lambda e: e["ts"])
        run = [events[0]]
        for event in events[1:]:
            if event["ts"] - run[-1]["ts"] >= gap_ms:
                expected.members[(run[0]["ts"], *key)] = run
                run = []
            run.append(event)
        expected.members[(run[0]["ts"], *key)] = run
    return expected


def quality(stamped: list[Stamped], dead_letters: Mapping[str, Sequence[int]], events: Mapping[str, Sequence[Event]],
            size_ms: int, slide_ms: int, lateness_ms: int) -> dict[tuple[int, int], list[int]]:
    """Quality reports of fixed windows: (window start, as_of) -> [events, late, duplicates, dead letters].

    ``dead_letters`` gives, per partition, the number of events before each malformed record.
    """
    reports: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def as_of(start: int, watermark: int | None) -> int:
        reached = None if watermark is None else watermark - watermark % slide_ms
        return start + size_ms if reached is None else max(reached, start + size_ms)

    for item in stamped:
        ts = item.event["ts"]
        latest = ts - ts % slide_ms
        for start in (latest - k * slide_ms for k in range(size_ms // slide_ms)):
            if item.duplicate:
                reports[(start, as_of(start, item.watermark))][2] += 1
            elif item.watermark is not None and start + size_ms <= item.watermark:
                reports[(start, as_of(start, item.watermark))][1] += 1
            else:
                reports[(start, start + size_ms)][0] += 1
    for partition, befores in dead_letters.items():
        times = [e["ts"] for e in events[partition]]
        for before in befores:
            if not times:
                continue
            newest = max(times[:before]) if before else times[0]
            start = newest - newest % slide_ms
            reports[(start, as_of(start, newest - lateness_ms))][3] += 1
    return dict(reports)
