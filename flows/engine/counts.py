"""Counts of records and events, the one counter type the engine adds up.

Every step that counts (decoding, de-duplication, lateness) reports a
:class:`Counts` per batch; the run summary and the monitoring figures add
them with ``+``, field by field, so a new count is one new field here.

>>> Counts(records=3, events=2, dead_letters=1) + Counts(late=1)
Counts(records=3, events=2, dead_letters=1, duplicates=0, late=1, quarantined=0)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Counts:
    """Records read (as the source counts them), events decoded, dead letters, duplicates, late and
    quarantined events."""

    records: int = 0
    events: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    late: int = 0
    quarantined: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(*(getattr(self, f.name) + getattr(other, f.name) for f in dataclasses.fields(Counts)))

    @property
    def reconciled(self) -> bool:
        """Every record is an event or a dead letter."""
        return self.records == self.events + self.dead_letters

    @property
    def on_time(self) -> int:
        """Decoded events that are neither duplicates, late for a window, nor quarantined."""
        return self.events - self.duplicates - self.late - self.quarantined
