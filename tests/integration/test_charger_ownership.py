"""One charger, one controller across workers (issue 14): two workers hold the two feeders that name one charger.

The feeder registered later is read first and commands the charger; when the earlier registration on the other
worker's feeder is read, the worker that holds the later one retires it with an immediate 0 kW revocation, and a
new registration on it is refused (``duplicate_charger``) while the other feeder holds the charger.
"""

from __future__ import annotations

import time

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    ChargerTelemetry,
    DeadLetter,
    MeterReading,
    decode_record,
    encode_record,
)
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, DEADLETTER, METER_READINGS, SETPOINTS
from streams.kafka.clients import consume_all, make_producer, produce_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MIN = 60_000
DUPLICATE = f"{CHARGER_REGISTRY}/duplicate_charger"


def charger(cid: str, feeder: str, at: int, active: bool = True) -> ChargerRegistration:
    return ChargerRegistration(charger_id=cid, feeder_id=feeder, site_id=f"S-{feeder}", customer_id="U1",
                               bidirectional=False, inverter_location="onboard", interconnection_class="non_parallel",
                               max_charge_kw=7.0, registered_at=at, active=active)


def test_the_earlier_registration_holds_the_charger_whichever_worker_reads_what_first(
        topic_namespace, start_worker) -> None:  # type: ignore[no-untyped-def]
    s = topic_namespace
    codec = default_codec()
    start = int(time.time() * 1000) // (15 * MIN) * (15 * MIN) - 45 * MIN
    p = make_producer(s)

    def send(topic: str, recs: list) -> None:  # type: ignore[type-arg]
        records = [(r.feeder_id.encode(), encode_record(codec, r), None, None) for r in recs]
        assert produce_records(p, s.topic_prefix + topic, records).failed == 0

    env = {"EVGRID_BOOTSTRAP_SERVERS": s.bootstrap_servers, "EVGRID_TOPIC_PREFIX": s.topic_prefix,
           "EVGRID_MONITOR_ENABLED": "false"}
    workers = [start_worker(env, name=f"w{i}") for i in range(2)]
    for w in workers:
        w.wait_for(lambda st: "accepted" in st, timeout=90, what="worker up")
    feeders = [f"G{k}" for k in range(12)]  # one charger each, to learn which worker holds which feeder
    send(CHARGER_REGISTRY, [charger(f"D{k}", f, start - 10 * MIN) for k, f in enumerate(feeders)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        held = [set(w.stats().get("feeders", [])) for w in workers]
        if held[0] | held[1] >= set(feeders):
            break
        time.sleep(1)
    assert held[0] and held[1], f"both workers hold feeders: {held}"
    a, b = sorted(held[0])[0], sorted(held[1])[0]
    wa, wb = workers

    # B: registered later, read first; it commands C1 (a car that wants energy)
    send(CHARGER_REGISTRY, [charger("C1", b, start - MIN)])
    send(METER_READINGS, [MeterReading(meter_id="M1", feeder_id=b, timestamp=start + k * 5 * MIN,
                                       active_power_kw=20.0) for k in range(12)])
    send(CHARGER_TELEMETRY, [ChargerTelemetry(charger_id="C1", feeder_id=b, timestamp=start + k * 5 * MIN,
                                              connected=True, session_id="s1", power_kw=0.0, soc_pct=20.0,
                                              battery_capacity_kwh=60.0, max_charge_kw=7.0,
                                              departure_time=start + 4 * 60 * MIN, requested_energy_kwh=30.0)
                             for k in range(4)])
    wb.wait_for(lambda st: st.get("accepted", {}).get(CHARGER_TELEMETRY, 0) >= 4 and st.get("held_telemetry", 1) == 0,
                timeout=180, what="B's telemetry applied")

    def setpoints() -> list[ChargerSetpoint]:
        out = [decode_record(codec, m.value()) for m in consume_all(s, [s.topic_prefix + SETPOINTS], idle=1.0)]
        return [r for r in out if isinstance(r, ChargerSetpoint) and r.charger_id == "C1"]

    before = setpoints()
    assert before and all(sp.feeder_id == b for sp in before) and max(sp.setpoint_kw for sp in before) > 0

    # A: registered earlier, read later, on the other worker: A holds C1, B retires it at once
    send(CHARGER_REGISTRY, [charger("C1", a, start - 2 * MIN)])
    wb.wait_for(lambda st: st.get("duplicates_retired", 0) == 1, timeout=120, what="B retires C1")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(after := setpoints()) == len(before):
        time.sleep(1)
    last = after[-1]
    assert (last.feeder_id, last.setpoint_kw, last.message) == (b, 0.0, "revoked: charger deactivated")
    assert wa.stats()["rejected"].get(DUPLICATE, 0) == 0, "the earlier registration is accepted"

    # B tries again while A holds the charger: refused and dead-lettered
    send(CHARGER_REGISTRY, [charger("C1", b, start + MIN)])
    wb.wait_for(lambda st: st["rejected"].get(DUPLICATE, 0) == 2, timeout=120, what="B's new registration refused")
    letters = [decode_record(codec, m.value()) for m in consume_all(s, [s.topic_prefix + DEADLETTER], idle=1.0)]
    reasons = [d.reason for d in letters if isinstance(d, DeadLetter) and d.reason_code == "duplicate_charger"]
    assert len(reasons) == 1 and f"registered on feeder {a}" in reasons[0]
