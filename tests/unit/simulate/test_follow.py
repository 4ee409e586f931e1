"""Live simulator chargers answer setpoints: the latest setpoint by sequence, applied by the twin's rule."""

from __future__ import annotations

from streams.contracts.models import ChargerSetpoint, ChargerTelemetry, SchedulePoint
from streams.simulate import SimConfig, simulate
from streams.simulate.follow import LatestSetpoints

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
H = 3_600_000


def sp(cid: str, seq: int, kw: float, frm: int = T0, until: int = T0 + 48 * H,
       schedule: tuple[tuple[int, float], ...] = ()) -> ChargerSetpoint:
    return ChargerSetpoint(charger_id=cid, feeder_id="F001", sequence=seq, setpoint_kw=kw, valid_from=frm,
                           valid_until=until, fallback_kw=0.0, reason="optimal", plan_id="p", issued_at=frm,
                           schedule=[SchedulePoint(start=a, kw=b) for a, b in schedule])


def test_latest_by_sequence_and_the_rule() -> None:
    store = LatestSetpoints(schedule_ms=4 * H)
    assert store("c1", T0) is None  # no setpoint: uncontrolled
    assert store.offer(sp("c1", 2, 3.0, until=T0 + H, schedule=((T0, 3.0), (T0 + 2 * H, 1.0))))
    assert not store.offer(sp("c1", 1, 9.0))  # older sequence, later arrival: ignored
    assert store("c1", T0 + 30 * 60_000) == 3.0
    assert store("c1", T0 + 2 * H + 1) == 1.0  # schedule after validity
    assert store("c1", T0 + 5 * H) == 0.0  # schedule over: fallback
    assert store.received == 2 and list(store.latest) == ["c1"]


def test_simulated_chargers_follow_the_store() -> None:
    cfg = SimConfig(feeders=1, homes=4, chargers=4, hours=24, seed=3)
    store = LatestSetpoints(schedule_ms=4 * H)
    free = [m.record for m in simulate(cfg) if isinstance(m.record, ChargerTelemetry) and m.record.connected]
    assert any(t.power_kw > 2.0 for t in free)
    for cid in {t.charger_id for t in free}:
        store.offer(sp(cid, 1, 2.0, frm=cfg.start_ms - 48 * H, until=cfg.end_ms + H))
    held = [m.record for m in simulate(cfg, setpoint_fn=store)
            if isinstance(m.record, ChargerTelemetry) and m.record.connected and m.record.timestamp >= cfg.start_ms]
    assert held and max(t.power_kw for t in held) <= 2.0 + 1e-9
    assert any(t.power_kw == 2.0 for t in held)
