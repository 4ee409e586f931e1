"""Notices for the utility (``UtilityEvent`` on ``evgrid.utility.events``), built from what a feeder applied. Pure.

A site registration that sets a new interconnection status → ``status_change``; a bidirectional charger whose
inverter pathway its site's agreement does not approve → ``pathway_refused`` (once, until it is approved again);
an islanded episode's start and end → ``backup_started`` / ``backup_ended``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from streams.contracts.models import ChargerRegistration, SiteRegistration, UtilityEvent
from streams.dispatch.backup import BackupEpisode
from streams.dispatch.interconnection import pathway_refused

__all__ = ["backup_event", "pathway_events", "refused_pathways", "status_event"]


def status_event(feeder_id: str, old: SiteRegistration | None, new: SiteRegistration,
                 effective_class: str) -> UtilityEvent | None:
    """The ``status_change`` of a site registration (``None`` when its status and date did not change)."""
    before = old.interconnection_status if old is not None else None
    if old is not None and before == new.interconnection_status and old.status_since == new.status_since:
        return None
    at = new.status_since if new.status_since is not None else new.registered_at
    return UtilityEvent(
        event_id=f"{feeder_id}:status_change:{new.site_id}:{at}", kind="status_change", feeder_id=feeder_id,
        site_id=new.site_id, at=at, status=new.interconnection_status, previous_status=before,
        effective_class=effective_class,
        message=f"site {new.site_id}: {before or 'new'} -> {new.interconnection_status}; "
                f"{effective_class} applies")


def refused_pathways(chargers: Iterable[ChargerRegistration], sites: Mapping[str, SiteRegistration]
                     ) -> dict[str, str]:
    """Active bidirectional chargers whose inverter pathway their site does not approve, with why."""
    out = {}
    for r in chargers:
        site = sites.get(r.site_id)
        why = pathway_refused(site, r.inverter_location) if r.active and r.bidirectional and site and site.active \
            else None
        if why is not None:
            out[r.charger_id] = why
    return out


def pathway_events(feeder_id: str, before: Mapping[str, str], now: Mapping[str, str],
                   chargers: Mapping[str, ChargerRegistration], at: int) -> list[UtilityEvent]:
    """A ``pathway_refused`` for each charger refused ``now`` and not ``before``."""
    return [UtilityEvent(event_id=f"{feeder_id}:pathway_refused:{cid}:{at}", kind="pathway_refused",
                         feeder_id=feeder_id, site_id=chargers[cid].site_id, charger_id=cid, at=at,
                         effective_class="non_parallel", message=f"charger {cid}: no discharge: {why}")
            for cid, why in sorted(now.items()) if cid not in before]


def backup_event(feeder_id: str, ep: BackupEpisode) -> UtilityEvent:
    """``backup_started`` for an open episode, ``backup_ended`` (with its duration) for a closed one."""
    if ep.end_ms is None:
        return UtilityEvent(event_id=f"{feeder_id}:backup_started:{ep.charger_id}:{ep.start_ms}",
                            kind="backup_started", feeder_id=feeder_id, site_id=ep.site_id, charger_id=ep.charger_id,
                            at=ep.start_ms, message=f"charger {ep.charger_id} islanded (backup power)")
    secs = (ep.end_ms - ep.start_ms) / 1000.0
    return UtilityEvent(event_id=f"{feeder_id}:backup_ended:{ep.charger_id}:{ep.end_ms}", kind="backup_ended",
                        feeder_id=feeder_id, site_id=ep.site_id, charger_id=ep.charger_id, at=ep.end_ms,
                        duration_s=secs, message=f"charger {ep.charger_id} grid-connected again after {secs:.0f} s")
