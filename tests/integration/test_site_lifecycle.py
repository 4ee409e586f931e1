"""Interconnection status on the real broker (issue 21): a site suspended mid-discharge (``evgrid sites
set-status``) gets a 0 kW discharge setpoint from the step that applies the registration, and the utility an
event on ``evgrid.utility.events``; ``evgrid sites history`` shows the change.

The worker's planner is replaced (preamble) by one that asks every car to discharge 7 kW: the test is about
what the envelope and the revocation let through, not about when discharging pays.
"""

from __future__ import annotations

import json
import time

import pytest

from streams.cli import main
from streams.contracts.codec import default_codec
from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    ChargerTelemetry,
    MeterReading,
    SiteRegistration,
    UtilityEvent,
    decode_record,
    encode_record,
)
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS, SETPOINTS, UTILITY_EVENTS
from streams.kafka.clients import consume_all, make_producer, produce_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DISCHARGING_PLANNER = """
from dataclasses import replace as _replace
import numpy as _np
import streams.dispatch.dispatcher as _d
_real = _d.plan_feeder
def _discharge(req, limit):
    plan = _real(req, limit)
    return _replace(plan, schedules={k: _np.full(len(plan.edges_ms) - 1, -7.0) for k in plan.schedules})
_d.plan_feeder = _discharge
"""

MIN = 60_000


def test_a_site_suspended_mid_discharge_is_revoked_at_once_and_the_utility_told(
        topic_namespace, start_worker, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    s = topic_namespace
    codec = default_codec()
    start = int(time.time() * 1000) // (15 * MIN) * (15 * MIN) - 45 * MIN
    site = SiteRegistration(site_id="S1", feeder_id="F1", interconnection_class="parallel_exporting",
                            export_limit_kw=10.0, registered_at=start - MIN, status_since=start - MIN)
    car = ChargerRegistration(charger_id="C1", feeder_id="F1", site_id="S1", customer_id="U1", bidirectional=True,
                              inverter_location="offboard", interconnection_class="parallel_exporting",
                              export_limit_kw=7.0, v2g_enrolled=True, max_charge_kw=7.0, max_discharge_kw=7.0,
                              registered_at=start - MIN)
    tels = [ChargerTelemetry(charger_id="C1", feeder_id="F1", timestamp=start + k * 5 * MIN, connected=True,
                             session_id="s1", power_kw=0.0, soc_pct=90.0, battery_capacity_kwh=60.0,
                             max_charge_kw=7.0, max_discharge_kw=7.0, departure_time=start + 10 * 60 * MIN,
                             requested_energy_kwh=1.0) for k in range(9)]
    meters = [MeterReading(meter_id="M1", feeder_id="F1", timestamp=start + k * 5 * MIN, active_power_kw=20.0)
              for k in range(9 + 8)]
    p = make_producer(s)
    for topic, recs in ((CHARGER_REGISTRY, [site, car]), (METER_READINGS, meters), (CHARGER_TELEMETRY, tels)):
        records = [(b"F1", encode_record(codec, r), None, None) for r in recs]
        assert produce_records(p, s.topic_prefix + topic, records).failed == 0
    w = start_worker({"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
                      "EVGRID_MONITOR_ENABLED": "false"}, preamble=DISCHARGING_PLANNER)
    w.wait_for(lambda st: st.get("accepted", {}).get(CHARGER_TELEMETRY, 0) >= len(tels)
               and st.get("held_telemetry", 1) == 0, timeout=180, what="the telemetry applied")

    def outputs() -> tuple[list[ChargerSetpoint], list[UtilityEvent]]:
        out = [decode_record(codec, m.value()) for m in
               consume_all(s, [s.topic_prefix + t for t in (SETPOINTS, UTILITY_EVENTS)], timeout=60, idle=1.0)]
        return ([r for r in out if isinstance(r, ChargerSetpoint)], [r for r in out if isinstance(r, UtilityEvent)])

    sps, events = outputs()
    assert min(sp.setpoint_kw for sp in sps) < 0, "approved, parallel_exporting: the car discharges"
    assert [(e.kind, e.status) for e in events] == [("status_change", "approved")]

    monkeypatch.setenv("EVGRID_BOOTSTRAP_SERVERS", s.bootstrap_servers)
    monkeypatch.setenv("EVGRID_TOPIC_PREFIX", s.topic_prefix)
    capsys.readouterr()
    assert main(["sites", "set-status", "S1", "suspended"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert (done["previous_status"], done["status"]) == ("approved", "suspended")
    w.wait_for(lambda st: st.get("accepted", {}).get(CHARGER_REGISTRY, 0) >= 3, timeout=120, what="the suspension")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sps, events = outputs()
        if any(e.status == "suspended" for e in events):
            break
    (ev,) = [e for e in events if e.status == "suspended"]
    assert (ev.kind, ev.site_id, ev.previous_status, ev.effective_class) == (
        "status_change", "S1", "approved", "non_parallel")
    regs = [decode_record(codec, m.value()) for m in consume_all(s, [s.topic_prefix + CHARGER_REGISTRY], idle=1.0)]
    suspended = max((r for r in regs if isinstance(r, SiteRegistration)), key=lambda r: r.registered_at)
    revoked = [sp for sp in sps if sp.valid_from == suspended.registered_at]
    assert len(revoked) == 1, "one setpoint from the step that applied the registration, at its event time"
    (rev,) = revoked
    assert rev.setpoint_kw >= 0.0 and all(pt.kw >= 0.0 for pt in rev.schedule)
    assert rev.message == "revoked: no discharge as non_parallel (site S1 is suspended)"

    capsys.readouterr()
    assert main(["sites", "history", "S1"]) == 0
    hist = json.loads(capsys.readouterr().out)
    assert [row["status"] for row in hist["history"]] == ["approved", "suspended"] and hist["status"] == "suspended"
    assert main(["sites", "set-status", "S1", "paused"]) == 2
    assert main(["sites", "history", "nowhere"]) == 2
