"""Interconnection lifecycle (issue 21): a site's status and approved inverter pathway → the class that applies.

Pure. A site's ``interconnection_class`` applies only while its ``interconnection_status`` is ``approved``;
``backup_only`` (energized for backup power, non-parallel) and ``applied`` / ``suspended`` / ``withdrawn`` (no
parallel operation) are all treated as ``non_parallel``: charging only, no discharge, no export. A charger
whose inverter pathway (``ChargerRegistration.inverter_location``: ``offboard`` = the DC charger's inverter,
``onboard`` = the car's AC on-board inverter behind an AC charger) differs from the pathway the site's agreement
approved is treated as ``non_parallel`` too. The site rules (:func:`streams.dispatch.site_rules.site_rules`) and
the dispatcher apply these classes, so the envelope sees only the effective class.
"""

from __future__ import annotations

from streams.contracts.models import SiteRegistration

__all__ = ["OPERATING", "STATUSES", "charger_class", "pathway_refused", "restriction", "status_class"]

STATUSES = ("applied", "approved", "backup_only", "suspended", "withdrawn")
"""Every interconnection status."""

OPERATING = "approved"
"""The one status under which the registered class applies (parallel operation per the agreement)."""


def status_class(interconnection_class: str, status: str) -> str:
    """The class that applies under ``status``: the registered one if ``approved``, else ``non_parallel``.

    >>> status_class("parallel_exporting", "approved"), status_class("parallel_exporting", "backup_only")
    ('parallel_exporting', 'non_parallel')
    """
    return interconnection_class if status == OPERATING else "non_parallel"


def pathway_refused(site: SiteRegistration | None, inverter_location: str) -> str | None:
    """Why a charger with inverter pathway ``inverter_location`` may not discharge at ``site`` (``None``: it
    may, as far as the pathway goes: no site, or no pathway recorded, or the same one).

    >>> s = SiteRegistration(site_id="S", feeder_id="F", interconnection_class="parallel_exporting",
    ...                      registered_at=10**12, inverter_location="offboard")
    >>> pathway_refused(s, "onboard")
    'site S is approved for an offboard inverter, the charger uses an onboard one'
    """
    if site is None or site.inverter_location is None or site.inverter_location == inverter_location:
        return None
    return (f"site {site.site_id} is approved for an {site.inverter_location} inverter, the charger uses an "
            f"{inverter_location} one")


def restriction(site: SiteRegistration | None, inverter_location: str) -> str | None:
    """Why the site's agreement does not apply as registered to a charger there (status, then pathway)."""
    if site is not None and site.active and site.interconnection_status != OPERATING:
        return f"site {site.site_id} is {site.interconnection_status}"
    return pathway_refused(site, inverter_location) if site is not None and site.active else None


def charger_class(site_class: str, site: SiteRegistration | None, inverter_location: str) -> str:
    """The class a charger is held to: its site's (strictest, status applied) class, ``non_parallel`` when
    its inverter pathway is not the approved one."""
    if site is not None and site.active and pathway_refused(site, inverter_location) is not None:
        return "non_parallel"
    return site_class
