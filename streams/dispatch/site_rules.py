"""Interconnection rules at a site's point of interconnection (pure).

A site's rules come from its ``SiteRegistration`` (its class as its interconnection status lets it apply, see
:mod:`.interconnection`) and from every active registration naming the site;
where they disagree the strictest applies (least permissive class, lowest limits). :func:`site_envelope`
is the last step of the safety envelope: it cuts a site's discharge until its net export is within its
limit (the approved limit for ``parallel_exporting``, 0 otherwise) and its charging until its net import
is within its import limit. Net power counts the site's own load only where a fresh site meter shows it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streams.contracts.models import ChargerRegistration, ChargerTelemetry, SiteRegistration
from streams.dispatch.interconnection import status_class
from streams.dispatch.state import ChargerInfo

__all__ = ["CLASS_RANK", "RATING_TOLERANCE", "SiteRules", "outside_rating", "site_conflict", "site_envelope",
           "site_rules", "strictest_class"]

CLASS_RANK = {"non_parallel": 0, "parallel_non_exporting": 1, "parallel_exporting": 2}
"""Interconnection classes from the least to the most permissive."""

RATING_TOLERANCE = (1.05, 0.1)
"""Reported power may exceed the registered rating by 5 % + 0.1 kW (metering error), no more."""


def strictest_class(classes: Iterable[str]) -> str:
    """The least permissive of ``classes`` (``parallel_exporting`` when none is given)."""
    return min(classes, key=CLASS_RANK.__getitem__, default="parallel_exporting")


@dataclass(frozen=True, slots=True)
class SiteRules:
    """What a site may do at its point of interconnection."""

    site_id: str
    interconnection_class: str
    export_limit_kw: float
    """Net export allowed, kW: the approved limit for ``parallel_exporting``, else 0."""
    import_limit_kw: float | None = None
    registered: bool = False
    """A ``SiteRegistration`` exists (else the rules come from the charger registrations only)."""


def site_rules(site_id: str, site: SiteRegistration | None, chargers: Iterable[ChargerInfo]) -> SiteRules:
    """The strictest of the site's registration and the active charger registrations naming it."""
    chs = [c for c in chargers if c.active and c.site_id == site_id]
    classes = [c.interconnection_class for c in chs]
    exports = [c.export_limit_kw for c in chs if c.interconnection_class == "parallel_exporting"]
    imports = [c.site_import_limit_kw for c in chs if c.site_import_limit_kw is not None]
    if site is not None and site.active:
        classes.append(status_class(site.interconnection_class, site.interconnection_status))
        exports.append(site.export_limit_kw)
        if site.import_limit_kw is not None:
            imports.append(site.import_limit_kw)
    cls = strictest_class(classes) if classes else "non_parallel"
    export = max(0.0, min(exports, default=0.0)) if cls == "parallel_exporting" else 0.0
    return SiteRules(site_id, cls, export, min(imports) if imports else None, site is not None and site.active)


def site_conflict(site: SiteRegistration | None, reg: ChargerRegistration) -> str | None:
    """Why a charger registration disagrees with its site's registration, or ``None``."""
    if site is None or not site.active or not reg.active or reg.site_id != site.site_id:
        return None
    if reg.feeder_id != site.feeder_id:
        return f"charger {reg.charger_id} is on feeder {reg.feeder_id}, its site {site.site_id} on {site.feeder_id}"
    if reg.interconnection_class != site.interconnection_class:
        return (f"charger {reg.charger_id} says {reg.interconnection_class}, site {site.site_id} says "
                f"{site.interconnection_class}; the stricter applies")
    if reg.interconnection_class == "parallel_exporting" and reg.export_limit_kw > site.export_limit_kw + 1e-9:
        return (f"charger {reg.charger_id} export limit {reg.export_limit_kw} kW is above its site's approved "
                f"{site.export_limit_kw} kW; the site's applies")
    return None


def outside_rating(tel: ChargerTelemetry, reg: ChargerRegistration | ChargerInfo) -> str | None:
    """Why reported power is impossible for the registered asset (beyond its ratings + tolerance), or ``None``."""
    factor, slack = RATING_TOLERANCE
    discharge = reg.max_discharge_kw if reg.bidirectional else 0.0
    if tel.power_kw > reg.max_charge_kw * factor + slack:
        return f"power_kw {tel.power_kw} is above the registered max_charge_kw {reg.max_charge_kw}"
    if -tel.power_kw > discharge * factor + slack:
        return f"power_kw {tel.power_kw} discharges beyond the registered max_discharge_kw {discharge}"
    return None


def site_envelope(kws: Mapping[str, float], rules: SiteRules, own_load_kw: float | None,
                  fixed_kw: float = 0.0, own_import_kw: float | None = None) -> tuple[dict[str, float], str | None]:
    """Cut the site's setpoints ``kws`` (+ charge / − discharge, kW) until both site limits hold.

    ``own_load_kw`` is the site's own load from a fresh site meter (``None`` = unknown: not counted);
    ``fixed_kw`` is the power of site assets not in ``kws``; ``own_import_kw`` the (high) own-load estimate the
    import limit is held against (default ``own_load_kw``). Discharge is cut first, in proportion,
    until net export ≤ the export limit; then charging, in proportion, until net import ≤ the import
    limit (charging is never raised, so an own load alone above the limit leaves charging at 0).
    Returns the new setpoints and which limit bound them (``None`` = unchanged).
    """
    out = {k: (float(v) if math.isfinite(v) else 0.0) for k, v in kws.items()}
    own = own_load_kw if own_load_kw is not None and math.isfinite(own_load_kw) else 0.0
    why = None
    net = sum(out.values()) + fixed_kw + own  # import > 0
    over_export = -net - rules.export_limit_kw
    dis = -sum(v for v in out.values() if v < 0)
    if over_export > 1e-9 and dis > 0:
        keep = max(0.0, 1.0 - over_export / dis)
        out = {k: (v * keep if v < 0 else v) for k, v in out.items()}
        why = "site_export_limit"
    if rules.import_limit_kw is not None:
        high = own_import_kw if own_import_kw is not None and math.isfinite(own_import_kw) else own
        net = sum(out.values()) + fixed_kw + max(own, high)
        over_import = net - rules.import_limit_kw
        chg = sum(v for v in out.values() if v > 0)
        if over_import > 1e-9 and chg > 0:
            keep = max(0.0, 1.0 - over_import / chg)
            out = {k: (v * keep if v > 0 else v) for k, v in out.items()}
            why = "site_import_limit"
    return out, why
