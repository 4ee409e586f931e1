"""Interconnection status changes, refused pathways and backup episodes through a worker (issue 21): the
revocation and the ``UtilityEvent`` come out of the same processing step as the registration."""

from __future__ import annotations

from streams.contracts.codec import default_codec
from streams.contracts.models import SiteRegistration, UtilityEvent, decode_record
from streams.contracts.topics import SETPOINTS, TOPICS, UTILITY_EVENTS
from tests.fixtures.feeder_records import T0, tel
from tests.unit.pipeline.test_site_registry import Run, site, v2g

CODEC = default_codec()


class EventRun(Run):
    """A :class:`Run` that also collects the utility events, and which topics the last message's own step wrote."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[UtilityEvent] = []
        self.last: list[str] = []
        self.new_setpoints: list = []

    def send(self, rec) -> None:  # type: ignore[no-untyped-def]
        n_sp = len(self.setpoints)
        process, tick = self.w.process, self.w.tick

        def spy(real, step):  # type: ignore[no-untyped-def]
            def call(*a, **k):  # type: ignore[no-untyped-def]
                emit = real(*a, **k)
                for topic, _, value in emit.messages:
                    if topic == UTILITY_EVENTS:
                        ev = decode_record(CODEC, value, TOPICS[topic].record)
                        assert isinstance(ev, UtilityEvent)
                        self.events.append(ev)
                if step:
                    self.last = [t for t, _, _ in emit.messages]
                return emit
            return call

        self.w.process, self.w.tick = spy(process, True), spy(tick, False)  # type: ignore[method-assign]
        try:
            super().send(rec)
        finally:
            self.w.process, self.w.tick = process, tick  # type: ignore[method-assign]
        self.new_setpoints = self.setpoints[n_sp:]


def status(s: SiteRegistration, value: str, at: int, **kw) -> SiteRegistration:
    return s.model_copy(update={"interconnection_status": value, "status_since": at, "registered_at": at, **kw})


def test_a_suspension_mid_discharge_revokes_in_the_same_step_and_tells_the_utility() -> None:
    r = EventRun()
    r.send(site())
    assert [(e.kind, e.status, e.previous_status) for e in r.events] == [("status_change", "approved", None)]
    r.send(v2g())
    r.send(tel(T0 + 60_000).model_copy(update={"soc_pct": 90.0}))
    d = r.w.runtimes[b"F1"].dispatcher
    sp = d._send("C1", T0 + 60_000, -5.0, "optimal", [], None, "p")  # a discharge in force
    r.send(status(site(), "suspended", T0 + 2 * 60_000))
    assert SETPOINTS in r.last and UTILITY_EVENTS in r.last  # one step: the registration's own outputs
    (rev,) = r.new_setpoints
    assert (rev.sequence, rev.setpoint_kw, rev.valid_from) == (sp.sequence + 1, 0.0, T0 + 2 * 60_000)
    assert rev.message == "revoked: no discharge as non_parallel (site S1 is suspended)"
    ev = r.events[-1]
    assert (ev.kind, ev.site_id, ev.status, ev.previous_status, ev.effective_class, ev.at) == (
        "status_change", "S1", "suspended", "approved", "non_parallel", T0 + 2 * 60_000)
    n = len(r.events)
    r.send(status(site(), "suspended", T0 + 2 * 60_000).model_copy(update={"registered_at": T0 + 3 * 60_000}))
    assert len(r.events) == n  # the same status again: no new notice


def test_a_refused_pathway_is_told_once() -> None:
    r = EventRun()
    r.send(v2g().model_copy(update={"inverter_location": "onboard"}))
    r.send(site().model_copy(update={"inverter_location": "offboard", "registered_at": T0 + 1}))
    refused = [e for e in r.events if e.kind == "pathway_refused"]
    assert [(e.charger_id, e.site_id, e.effective_class) for e in refused] == [("C1", "S1", "non_parallel")]
    assert "approved for an offboard inverter" in refused[0].message
    r.send(tel(T0 + 60_000))  # in the plan from its first telemetry: under the site's rules, no discharge
    assert r.w.runtimes[b"F1"].dispatcher.chargers["C1"].interconnection_class == "non_parallel"
    assert r.setpoints and all(sp.setpoint_kw >= 0 for sp in r.setpoints)
    assert r.setpoints[-1].message == ("no discharge: site S1 is approved for an offboard inverter, the charger "
                                       "uses an onboard one")
    r.send(v2g().model_copy(update={"inverter_location": "onboard", "registered_at": T0 + 2}))
    assert len([e for e in r.events if e.kind == "pathway_refused"]) == 1  # still refused: told once
    r.send(v2g().model_copy(update={"inverter_location": "offboard", "registered_at": T0 + 3}))
    r.send(v2g().model_copy(update={"inverter_location": "onboard", "registered_at": T0 + 4}))
    assert len([e for e in r.events if e.kind == "pathway_refused"]) == 2  # cleared, then refused again


def test_backup_episodes_are_told_with_their_duration() -> None:
    r = EventRun()
    r.send(v2g())
    r.send(tel(T0 + 60_000))
    r.send(tel(T0 + 16 * 60_000).model_copy(update={"grid_state": "islanded"}))
    r.send(tel(T0 + 31 * 60_000))
    r.send(tel(T0 + 46 * 60_000))
    kinds = [(e.kind, e.at, e.duration_s) for e in r.events if e.kind.startswith("backup")]
    assert kinds == [("backup_started", T0 + 16 * 60_000, None), ("backup_ended", T0 + 31 * 60_000, 900.0)]
