"""Backup-mode episodes: a charger or battery islanded (power outage, home served off-grid)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BackupEpisode"]


@dataclass(frozen=True, slots=True)
class BackupEpisode:
    """One islanded period of ``charger_id`` at ``site_id``: ``start_ms`` (first islanded telemetry) to
    ``end_ms`` (first grid-connected telemetry after it; ``None`` while still islanded)."""

    charger_id: str
    site_id: str | None
    start_ms: int
    end_ms: int | None = None

    @property
    def open(self) -> bool:
        return self.end_ms is None

    @property
    def duration_ms(self) -> int | None:
        return None if self.end_ms is None else self.end_ms - self.start_ms
