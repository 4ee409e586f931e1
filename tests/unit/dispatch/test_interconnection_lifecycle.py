"""Interconnection status and inverter pathways against the envelope (issue 21).

The checker re-derives the rule from the registrations it generated and imports nothing of
``streams.dispatch.safety``, ``site_rules`` or ``interconnection``: a charger discharges only at a site whose
status is ``approved``, whose class (and every charger's there: the strictest applies) is ``parallel_exporting``,
and whose approved inverter pathway (if recorded) is the charger's. A hostile planner asks every charger to
discharge 7 kW at every step; random status, class and pathway changes come between steps, each followed by the
revocations at that instant.
"""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.contracts.models import ChargerRegistration, ChargerSetpoint, SiteRegistration
from streams.dispatch import dispatcher as dispatcher_module
from streams.dispatch.dispatcher import FeederDispatcher
from tests.unit.dispatch.fleet import T0, Q, cfg, tel

CLASSES = ["non_parallel", "parallel_non_exporting", "parallel_exporting"]
STATUSES = ["applied", "approved", "backup_only", "suspended", "withdrawn"]
PATHWAYS = [None, "onboard", "offboard"]


def may_discharge(site: SiteRegistration, reg: ChargerRegistration, regs: list[ChargerRegistration]) -> bool:
    """The rule, written from the issues: an approved site, ``parallel_exporting`` as registered by the site and
    by every active charger naming it (the strictest applies), and the charger on the approved pathway."""
    return (site.interconnection_status == "approved" and site.interconnection_class == "parallel_exporting"
            and all(r.interconnection_class == "parallel_exporting" for r in regs if r.active)
            and reg.bidirectional and reg.active and site.inverter_location in (None, reg.inverter_location))


def _in_force(sp: ChargerSetpoint, now: int) -> list[float]:
    """Every power the setpoint may make the charger apply from ``now`` on: the setpoint, its schedule."""
    out = [sp.setpoint_kw] if sp.valid_from <= now < sp.valid_until else []
    return out + [p.kw for p in sp.schedule if p.start >= sp.valid_from]


@st.composite
def histories(draw):
    n = draw(st.integers(1, 3))
    regs = [ChargerRegistration(
        charger_id=f"c{j}", feeder_id="f1", site_id="s", customer_id=f"u{j}", bidirectional=True,
        inverter_location=draw(st.sampled_from(["onboard", "offboard"])),
        interconnection_class=draw(st.sampled_from(["parallel_exporting", "parallel_exporting", *CLASSES])),
        export_limit_kw=7.0, v2g_enrolled=True, max_charge_kw=7.0, max_discharge_kw=7.0, registered_at=T0)
        for j in range(n)]
    # the site's class changes between the three (a downgrade to parallel_non_exporting without a site meter
    # revokes the discharge: the test below)
    changes = draw(st.lists(st.tuples(st.sampled_from(STATUSES), st.sampled_from(CLASSES),
                                      st.sampled_from(PATHWAYS)), min_size=1, max_size=8))
    return regs, changes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories(), st.sampled_from(STATUSES), st.sampled_from(PATHWAYS))
def test_no_discharge_outside_approved_parallel_exporting_with_its_pathway(history, status0, path0) -> None:
    regs, changes = history
    real = dispatcher_module.plan_feeder

    def hostile(req, limit):
        plan = real(req, limit)
        return replace(plan, schedules={k: np.full(len(plan.edges_ms) - 1, -7.0) for k in plan.schedules})

    site = SiteRegistration(site_id="s", feeder_id="f1", interconnection_class="parallel_exporting",
                            export_limit_kw=20.0, registered_at=T0, interconnection_status=status0,
                            inverter_location=path0)
    d = FeederDispatcher("f1", cfg())
    d.on_site_registration(site)
    for r in regs:
        d.on_registration(r)
    sent: dict[str, ChargerSetpoint] = {}
    allowed_seen = discharged = 0
    with mock.patch.object(dispatcher_module, "plan_feeder", hostile):
        now = T0
        for step, (status, cls, path) in enumerate([(status0, "parallel_exporting", path0), *changes]):
            if step:
                site = site.model_copy(update={"interconnection_status": status, "interconnection_class": cls,
                                               "inverter_location": path, "registered_at": T0 + step,
                                               "status_since": now})
                d.on_site_registration(site)
                sent.update({sp.charger_id: sp for sp in d.revocations(now)})
                for r in regs:  # at once: nothing in force discharges against the new rules
                    if r.charger_id in sent and not may_discharge(site, r, regs):
                        assert min(_in_force(sent[r.charger_id], now), default=0.0) >= 0.0, (site, r)
            for r in regs:
                d.on_telemetry(tel(r.charger_id, now, soc=90.0, cap=60.0, bidir=True))
            sent.update({sp.charger_id: sp for sp in d.on_interval(now).setpoints})
            for r in regs:
                sp = sent.get(r.charger_id)
                if sp is None:
                    continue
                low = min(_in_force(sp, now), default=0.0)
                if not may_discharge(site, r, regs):
                    assert low >= 0.0, (site, r, sp)
                else:
                    allowed_seen += 1
                    discharged += low < 0
            now += Q
    assert discharged == allowed_seen  # where the rules allow it, the hostile plan's discharge goes through


def test_a_suspension_revokes_a_discharge_in_force_with_its_reason() -> None:
    d = FeederDispatcher("f1", cfg())
    site = SiteRegistration(site_id="s", feeder_id="f1", interconnection_class="parallel_exporting",
                            export_limit_kw=20.0, registered_at=T0)
    d.on_site_registration(site)
    d.on_registration(ChargerRegistration(
        charger_id="c", feeder_id="f1", site_id="s", customer_id="u", bidirectional=True, inverter_location="onboard",
        interconnection_class="parallel_exporting", export_limit_kw=7.0, v2g_enrolled=True, max_charge_kw=7.0,
        max_discharge_kw=7.0, registered_at=T0))
    d.on_telemetry(tel("c", T0, soc=90.0, cap=60.0, bidir=True))
    sp = d._send("c", T0, -5.0, "optimal", [], None, "p")  # a discharge in force
    assert d.revocations(T0 + 60_000) == []  # approved, any pathway: nothing to revoke
    d.on_site_registration(site.model_copy(update={"interconnection_status": "suspended", "registered_at": T0 + 1}))
    (rev,) = d.revocations(T0 + 60_000)
    assert (rev.setpoint_kw, rev.reason, rev.sequence) == (0.0, "clipped_by_safety", sp.sequence + 1)
    assert rev.message == "revoked: no discharge as non_parallel (site s is suspended)"
    d.on_site_registration(site.model_copy(update={"registered_at": T0 + 2, "inverter_location": "offboard"}))
    d._send("c", T0 + 120_000, -5.0, "optimal", [], None, "p")
    (rev,) = d.revocations(T0 + 180_000)
    assert rev.message == ("revoked: no discharge as non_parallel (site s is approved for an offboard inverter, "
                           "the charger uses an onboard one)")


def test_backup_only_keeps_charging_and_refuses_discharge() -> None:
    d = FeederDispatcher("f1", cfg())
    d.on_site_registration(SiteRegistration(site_id="s", feeder_id="f1", interconnection_class="parallel_exporting",
                                            export_limit_kw=20.0, registered_at=T0,
                                            interconnection_status="backup_only"))
    d.on_registration(ChargerRegistration(
        charger_id="c", feeder_id="f1", site_id="s", customer_id="u", bidirectional=True, inverter_location="offboard",
        interconnection_class="parallel_exporting", export_limit_kw=7.0, v2g_enrolled=True, max_charge_kw=7.0,
        max_discharge_kw=7.0, registered_at=T0))
    assert d.chargers["c"].interconnection_class == "non_parallel" and d.chargers["c"].export_limit_kw == 0.0
    d.on_telemetry(tel("c", T0, soc=20.0, cap=60.0, bidir=True, energy=20.0, dep_h=4.0))
    (sp,) = d.on_interval(T0).setpoints
    assert sp.setpoint_kw > 0.0  # energized for backup: it still charges
    assert sp.message is not None and sp.message.endswith("no discharge: site s is backup_only")


def test_a_downgrade_to_non_exporting_without_a_site_meter_revokes_the_discharge_in_force() -> None:
    d = FeederDispatcher("f1", cfg())
    site = SiteRegistration(site_id="s", feeder_id="f1", interconnection_class="parallel_exporting",
                            export_limit_kw=20.0, registered_at=T0)
    d.on_site_registration(site)
    d.on_registration(ChargerRegistration(
        charger_id="c", feeder_id="f1", site_id="s", customer_id="u", bidirectional=True, inverter_location="offboard",
        interconnection_class="parallel_exporting", export_limit_kw=7.0, v2g_enrolled=True, max_charge_kw=7.0,
        max_discharge_kw=7.0, registered_at=T0))
    d.on_telemetry(tel("c", T0, soc=90.0, cap=60.0, bidir=True))
    d._send("c", T0, -7.0, "optimal", [], None, "p")
    d.on_site_registration(site.model_copy(update={"interconnection_class": "parallel_non_exporting",
                                                   "registered_at": T0 + 1}))
    revoked = d.revocations(T0 + 60_000)  # no site meter: every kW of that discharge is exported
    assert revoked and revoked[0].setpoint_kw >= 0.0
