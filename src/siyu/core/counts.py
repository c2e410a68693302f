"""What a write changed, so syncs and callbacks can report adds / updates / removals."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Counts:
    added: int = 0
    updated: int = 0
    removed: int = 0

    def __iadd__(self, other: Counts) -> Counts:
        self.added += other.added
        self.updated += other.updated
        self.removed += other.removed
        return self

    @property
    def changed(self) -> int:
        return self.added + self.updated + self.removed

    def as_dict(self) -> dict[str, int]:
        return {"added": self.added, "updated": self.updated, "removed": self.removed}
