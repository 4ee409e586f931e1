"""The registry topic through a worker (issue 14): sites next to chargers, registrations in ``registered_at``
order, one charger one controller, telemetry beyond the registered rating, revocation at once."""

from __future__ import annotations

from collections import Counter

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import (
    ChargerRegistration,
    ChargerSetpoint,
    DeadLetter,
    Record,
    SiteRegistration,
    decode_record,
    encode_record,
)
from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, DEADLETTER, SETPOINTS, TOPICS
from streams.ingest.validate import RawMessage, Validator
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings, pipeline_config
from tests.fixtures.feeder_records import HOUR, T0, reg, tel

SETTINGS = Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30)
CODEC = default_codec()


class Run:
    """A worker fed one message at a time; collects dead letters and setpoints."""

    def __init__(self) -> None:
        self.w = FeederWorker(pipeline_config(SETTINGS), clock=lambda: T0 + 30 * 24 * HOUR)
        self.state: dict[bytes, bytes] = {}
        self.offsets: Counter[str] = Counter()
        self.dead: list[DeadLetter] = []
        self.setpoints: list[ChargerSetpoint] = []

    def send(self, rec: Record) -> None:
        topic = CHARGER_TELEMETRY if type(rec).__name__ == "ChargerTelemetry" else CHARGER_REGISTRY
        msg = RawMessage(topic, 0, self.offsets[topic], rec.feeder_id.encode(),  # type: ignore[attr-defined]
                         encode_record(CODEC, rec), None)
        self.offsets[topic] += 1
        emit = self.w.process([msg], self.state.get)
        emit.messages += self.w.tick(force=True).messages
        for topic, _, value in emit.messages:
            out = decode_record(CODEC, value, TOPICS[topic].record)
            if topic == DEADLETTER:
                assert isinstance(out, DeadLetter)
                self.dead.append(out)
            elif topic == SETPOINTS:
                assert isinstance(out, ChargerSetpoint)
                self.setpoints.append(out)

    def codes(self) -> list[str]:
        return [d.reason_code for d in self.dead]


def site(cls: str = "parallel_exporting", export: float = 5.0, at: int = T0) -> SiteRegistration:
    return SiteRegistration(site_id="S1", feeder_id="F1", interconnection_class=cls,  # type: ignore[arg-type]
                            export_limit_kw=export, registered_at=at)


def v2g(cid: str = "C1", feeder: str = "F1", cls: str = "parallel_exporting", at: int = T0,
        active: bool = True) -> ChargerRegistration:
    return reg(cid).model_copy(update={"feeder_id": feeder, "bidirectional": True, "interconnection_class": cls,
                                       "export_limit_kw": 5.0, "v2g_enrolled": True, "max_discharge_kw": 7.0,
                                       "registered_at": at, "active": active})


def test_the_registry_topic_carries_sites_and_chargers_and_nothing_else() -> None:
    v = Validator(CODEC, clock=lambda: T0 + HOUR)
    for rec in (site(), reg()):
        msg = RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", encode_record(CODEC, rec))
        assert isinstance(v.check(msg), type(rec))
    tel_bytes = encode_record(CODEC, tel(T0))
    rej = v.check(RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", tel_bytes))
    assert getattr(rej, "code", None) == "wrong_record_type"
    rej = v.check(RawMessage(CHARGER_TELEMETRY, 0, 0, b"F1", encode_record(CODEC, site())))
    assert getattr(rej, "code", None) == "wrong_record_type"


def test_an_older_registration_read_later_is_stale_and_does_not_flip_the_class() -> None:
    r = Run()
    r.send(v2g(cls="non_parallel", at=T0 + 10))
    r.send(v2g(cls="parallel_exporting", at=T0))  # older: must not bring export back
    r.send(site(at=T0 + 5))
    r.send(site(cls="non_parallel", at=T0 + 9))
    r.send(site(cls="parallel_exporting", at=T0 + 1))
    assert r.codes().count("stale_registration") == 2
    rt = r.w.runtimes[b"F1"]
    assert rt.chargers["C1"].interconnection_class == "non_parallel"
    assert rt.sites["S1"].interconnection_class == "non_parallel"


def test_a_charger_disagreeing_with_its_site_is_dead_lettered_and_the_stricter_applies() -> None:
    r = Run()
    r.send(site(cls="parallel_non_exporting", export=0.0))
    r.send(v2g())  # says exporting
    assert r.codes() == ["site_conflict"]
    r.send(tel(T0 + 60_000))
    d = r.w.runtimes[b"F1"].dispatcher
    assert d.chargers["C1"].interconnection_class == "parallel_non_exporting"


def test_one_charger_one_controller() -> None:
    r = Run()
    r.send(v2g(feeder="F1"))
    r.send(v2g(feeder="F2", cls="non_parallel", at=T0 + 1))
    assert r.codes() == ["duplicate_charger"]
    assert "C1" not in r.w.runtimes[b"F2"].chargers
    r.send(v2g(feeder="F1", active=False, at=T0 + 2))  # retired on F1: the move may happen
    r.send(v2g(feeder="F2", at=T0 + 3))
    assert r.codes() == ["duplicate_charger"]
    assert r.w.runtimes[b"F2"].chargers["C1"].active


def test_an_earlier_registration_read_later_takes_the_charger_and_the_other_feeder_revokes_at_once() -> None:
    r = Run()
    r.send(v2g(feeder="F2", at=T0 + 1))
    r.send(tel(T0 + 60_000).model_copy(update={"feeder_id": "F2"}))
    assert r.setpoints and r.setpoints[-1].feeder_id == "F2" and r.setpoints[-1].setpoint_kw != 0.0
    r.send(v2g(feeder="F1", at=T0))  # made before F2's, read after it: F1 holds the charger
    assert r.codes() == []
    assert r.w.runtimes[b"F1"].chargers["C1"].active and not r.w.runtimes[b"F2"].chargers["C1"].active
    last = r.setpoints[-1]
    assert (last.feeder_id, last.setpoint_kw, last.message) == ("F2", 0.0, "revoked: charger deactivated")
    assert r.w.counters()["duplicates_retired"] == 1
    assert r.w.rejected[(CHARGER_REGISTRY, "duplicate_charger")] == 1


def test_one_charger_one_controller_across_workers() -> None:
    """Two workers, one feeder each: each sees the other's registrations through the registry reader only."""
    first, second = Run(), Run()
    second.send(v2g(feeder="F2", at=T0 + 1))
    second.send(tel(T0 + 60_000).model_copy(update={"feeder_id": "F2"}))
    first.send(v2g(feeder="F1", at=T0))
    f1_reg = RawMessage(CHARGER_REGISTRY, 0, 0, b"F1", encode_record(CODEC, v2g(feeder="F1", at=T0)))
    f2_reg = RawMessage(CHARGER_REGISTRY, 1, 0, b"F2", encode_record(CODEC, v2g(feeder="F2", at=T0 + 1)))
    assert first.w.observe_registry([f1_reg, f2_reg]) == 2 and second.w.observe_registry([f2_reg, f1_reg]) == 2
    for run in (first, second):
        for topic, _, value in run.w.tick().messages:
            if topic == SETPOINTS:
                run.setpoints.append(decode_record(CODEC, value, TOPICS[topic].record))  # type: ignore[arg-type]
    assert first.w.runtimes[b"F1"].chargers["C1"].active, "the earlier registration keeps the charger"
    assert not second.w.runtimes[b"F2"].chargers["C1"].active
    assert second.setpoints[-1].message == "revoked: charger deactivated"
    assert (first.w.duplicates_retired, second.w.duplicates_retired) == (0, 1)
    second.send(v2g(feeder="F2", at=T0 + 2))  # F2 tries again while F1 holds it: refused
    assert second.codes() == ["duplicate_charger"]


def test_telemetry_beyond_the_registered_rating_is_invalid_and_ignored() -> None:
    r = Run()
    r.send(reg())  # unidirectional 7 kW
    forged = tel(T0 + 60_000).model_copy(update={"power_kw": -47.0, "max_discharge_kw": 60.0})
    r.send(forged)
    assert r.codes() == ["invalid_value"]
    assert "C1" not in r.w.runtimes[b"F1"].dispatcher.sessions


def test_deactivation_and_islanding_revoke_at_once() -> None:
    r = Run()
    r.send(v2g())
    r.send(tel(T0 + 60_000))
    r.send(tel(T0 + 16 * 60_000))
    before = len(r.setpoints)
    assert before and r.setpoints[-1].setpoint_kw != 0.0
    r.send(tel(T0 + 17 * 60_000).model_copy(update={"grid_state": "islanded"}))
    last = r.setpoints[-1]
    assert len(r.setpoints) == before + 1
    assert (last.setpoint_kw, last.reason, last.fallback_kw, last.valid_from) == (0.0, "backup_mode", 0.0,
                                                                                  T0 + 17 * 60_000)
    r = Run()
    r.send(v2g())
    r.send(tel(T0 + 60_000))
    assert r.setpoints[-1].setpoint_kw != 0.0
    r.send(v2g(active=False, at=T0 + 2 * 60_000))  # retired: 0 kW at once, not at the next boundary
    last = r.setpoints[-1]
    assert (last.setpoint_kw, last.valid_from, last.message) == (0.0, T0 + 2 * 60_000, "revoked: charger deactivated")


def test_a_class_downgrade_revokes_discharge_at_once() -> None:
    r = Run()
    r.send(v2g())
    r.w.runtimes[b"F1"].dispatcher.last_sent.clear()
    r.send(tel(T0 + 60_000).model_copy(update={"soc_pct": 90.0}))
    d = r.w.runtimes[b"F1"].dispatcher
    sp = d._send("C1", T0 + 60_000, -5.0, "optimal", [], None, "p")  # a discharge in force
    r.setpoints.append(sp)
    r.send(v2g(cls="non_parallel", at=T0 + 2 * 60_000))
    last = r.setpoints[-1]
    assert last.sequence == sp.sequence + 1 and last.setpoint_kw >= 0.0 and last.valid_from == T0 + 2 * 60_000
    assert last.message == "revoked: no discharge as non_parallel"


def test_a_site_registration_checks_its_own_chargers_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 22: a site registration's conflict check touches the chargers of that site, not the feeder's."""
    import streams.pipeline.feeder as feeder

    r = Run()
    for i in range(50):
        r.send(reg(f"X{i}").model_copy(update={"site_id": f"other-{i}", "registered_at": T0 + i}))
    r.send(v2g(at=T0 + 100))  # C1, on S1
    checked: list[str] = []
    real = feeder.site_conflict

    def counted(s: SiteRegistration | None, c: ChargerRegistration) -> str | None:
        checked.append(c.charger_id)
        return real(s, c)

    monkeypatch.setattr(feeder, "site_conflict", counted)
    r.send(site(cls="parallel_non_exporting", export=0.0, at=T0 + 200))
    assert checked == ["C1"]
    assert r.codes() == ["site_conflict"]


def test_the_site_index_follows_a_charger_that_moves_and_survives_a_restore() -> None:
    from streams.pipeline.feeder import FeederRuntime, site_index

    r = Run()
    r.send(v2g(at=T0 + 1))
    r.send(v2g(at=T0 + 2).model_copy(update={"site_id": "S2"}))  # C1 moves to S2: S1's agreement no longer binds it
    r.send(site(cls="parallel_non_exporting", export=0.0, at=T0 + 3))
    assert r.codes() == []
    rt = r.w.runtimes[b"F1"]
    assert rt.site_chargers == {"S1": {}, "S2": {"C1": None}}
    from streams.pipeline import statecodec

    model = statecodec.encode(rt.forecaster)
    state, _ = rt.dump()
    rt2 = FeederRuntime.load(state, model)
    assert rt2.site_chargers == rt.site_chargers
    del rt.__dict__["site_chargers"]  # a checkpoint from before the index rebuilds it
    state, _ = rt.dump()
    assert FeederRuntime.load(state, model).site_chargers == site_index(rt.chargers) == {"S2": {"C1": None}}
