"""Every hostile input ends in a dead letter with its precise reason, or is handled as documented; the worker
never raises, and valid records around the bad ones are processed."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from streams.contracts.codec import MAGIC, DecodeError, default_codec
from streams.contracts.models import (
    DeadLetter,
    GridSignal,
    IncentiveResponse,
    SiteRegistration,
    decode_record,
    encode_record,
)
from streams.contracts.topics import (
    CHARGER_REGISTRY,
    CHARGER_TELEMETRY,
    DEADLETTER,
    GRID_SIGNALS,
    INCENTIVE_RESPONSES,
    INCENTIVES,
    METER_READINGS,
    WEATHER,
)
from streams.dispatch import planner
from streams.ingest.validate import RawMessage
from streams.pipeline.worker import FeederWorker
from streams.settings import Settings, pipeline_config
from tests.fixtures.feeder_records import HOUR as FHOUR
from tests.fixtures.feeder_records import T0 as FT0
from tests.fixtures.feeder_records import reg, tel
from tests.fixtures.hostile import REGISTRATION, T0, corpus, meter, telemetry

WALL = T0 + 40 * 86_400_000


def run(cases, clock=lambda: WALL):  # type: ignore[no-untyped-def]
    worker = FeederWorker(pipeline_config(Settings()), clock=clock)
    msgs = [RawMessage(case.topic, 0, i, case.key, case.value, None) for i, case in enumerate(cases)]
    emit = worker.process([m for m in msgs if m.topic != "evgrid.weather"], lambda f: None)
    emit.messages += worker.process_weather([m for m in msgs if m.topic == "evgrid.weather"]).messages
    worker.clock = lambda: WALL + 3_600_000  # an hour later: held telemetry of unknown chargers is given up
    emit.messages += worker.tick().messages
    return worker, emit


def test_each_hostile_input_gets_its_reason_and_good_ones_pass() -> None:
    cases = corpus()
    worker, emit = run(cases)
    codec = default_codec()
    letters = {d.offset: d for d in (decode_record(codec, v) for t, _, v in emit.messages if t == DEADLETTER)}
    for offset, case in enumerate(cases):
        letter = letters.get(offset)
        got = "accepted" if letter is None else letter.reason_code  # type: ignore[attr-defined]
        assert got == case.expect, f"{case.name}: expected {case.expect}, got {got}"
        if letter is not None:
            assert isinstance(letter, DeadLetter) and letter.reason and letter.value == case.value[:65_536]
    accepted = Counter({k: v for k, v in worker.accepted.items() if v})
    assert accepted == Counter(c.topic for c in cases if c.expect == "accepted")


def test_a_flood_from_one_key_does_not_starve_others() -> None:
    codec = default_codec()
    flood = [RawMessage(METER_READINGS, 0, i, b"F1", codec.encode("MeterReading", {
        "meter_id": f"M{i % 50}", "feeder_id": "F1", "timestamp": T0 + (i // 50) * 60_000, "active_power_kw": 1.0}),
        None) for i in range(20_000)]
    other = RawMessage(METER_READINGS, 1, 0, b"F2", codec.encode("MeterReading", {
        "meter_id": "X", "feeder_id": "F2", "timestamp": T0, "active_power_kw": 2.0}), None)
    worker = FeederWorker(pipeline_config(Settings()), clock=lambda: WALL)
    for k in range(0, len(flood), 2000):
        worker.process(flood[k:k + 2000] + ([other] if k == 10_000 else []), lambda f: None)
    assert worker.accepted[METER_READINGS] == 20_001 and b"F2" in worker.runtimes


HEADER_CODES = {"bad_magic", "unknown_schema", "wrong_record_type"}
REASON_CODES = set(next(f for f in json.loads((default_codec().schema_dir / "DeadLetter.avsc").read_text())["fields"]
                        if f["name"] == "reason_code")["doc"].split(": ", 1)[1].rstrip(".").split(", "))


def _samples() -> dict[str, bytes]:
    c = default_codec()
    return {
        METER_READINGS: c.encode("MeterReading", meter(T0 + 30 * 60_000)),
        CHARGER_TELEMETRY: c.encode("ChargerTelemetry", telemetry(T0 + 31 * 60_000)),
        CHARGER_REGISTRY: c.encode("ChargerRegistration", REGISTRATION),
        WEATHER: c.encode("WeatherObservation", {"station_id": "F1", "timestamp": T0, "air_temperature_c": 4.0,
                                                 "ghi_wm2": 10.0}),
        GRID_SIGNALS: c.encode("GridSignal", {"signal_id": "g1", "feeder_id": "F1", "issued_at": T0,
                                              "valid_from": T0, "valid_until": T0 + 3_600_000,
                                              "import_limit_kw": 50.0, "price_per_kwh": 0.2}),
        INCENTIVE_RESPONSES: c.encode("IncentiveResponse", {"offer_id": "o1", "feeder_id": "F1",
                                                            "customer_id": "U1", "accepted": True,
                                                            "responded_at": T0}),
    }


def _hostile_body(rng: random.Random, body: bytes) -> bytes:
    """A valid body with 1-3 byte edits (flip, overwrite, cut, insert), or random bytes."""
    if rng.random() < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(120)))
    b = bytearray(body)
    for _ in range(rng.randint(1, 3)):
        op, at = rng.randrange(4), rng.randrange(len(b) + 1)
        if op == 0 and at < len(b):
            b[at] ^= 1 << rng.randrange(8)
        elif op == 1 and at < len(b):
            b[at] = rng.randrange(256)
        elif op == 2:
            del b[at:]
        else:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(b)


@pytest.mark.parametrize("topic", sorted(_samples()))
def test_bodies_behind_valid_headers_are_accepted_or_dead_lettered_with_their_reason(topic: str) -> None:
    """Every version's header of the topic's schema, before hostile bodies: the body path runs every time."""
    codec, rng = default_codec(), random.Random(topic)
    sample = _samples()[topic]
    name, _ = codec.decode(sample)
    headers = [MAGIC + e.fingerprint for e in codec.versions[name]]
    outcomes: Counter[str] = Counter()
    for i in range(300):
        value = rng.choice(headers) + _hostile_body(rng, sample[10:])
        worker = FeederWorker(pipeline_config(Settings()), clock=lambda: WALL)
        msg = RawMessage(topic, 0, i, b"F1", value, None)
        emit = worker.process_weather([msg]) if topic == WEATHER else worker.process([msg], lambda f: None)
        letters = [decode_record(codec, v) for t, _, v in emit.messages if t == DEADLETTER]
        assert all(t == DEADLETTER for t, _, _ in emit.messages) and len(letters) <= 1
        assert sum(worker.rejected.values()) == len(letters) and sum(worker.accepted.values()) == 1 - len(letters)
        try:
            decode_record(codec, value, name)
            decoded = None
        except DecodeError as exc:
            decoded = exc.code
        if not letters:
            assert decoded is None, f"accepted a value the codec refuses ({decoded}): {value.hex()}"
            outcomes["accepted"] += 1
            continue
        (letter,) = letters
        assert isinstance(letter, DeadLetter) and letter.reason and letter.offset == i and letter.value == value
        assert letter.reason_code in REASON_CODES - HEADER_CODES, letter.reason_code
        if decoded is not None:
            assert letter.reason_code == decoded, letter.reason
        outcomes[letter.reason_code] += 1
    assert outcomes["accepted"] and len(outcomes) >= 3, outcomes  # both paths, and several reasons


# --- floods of the other input kinds: the work per plan stays bounded (LP solves counted, never timed) -------

class _Feeder:
    """Feeder F1 in a worker that applies telemetry at once, with every LP solve counted."""

    def __init__(self, monkeypatch) -> None:  # type: ignore[no-untyped-def]
        self.lps = self.plan_sites = 0  # LP solves; most sites in one LP
        real = planner.solve_lp_or_failure  # every solve goes through it: plans, counterfactuals, offer probes

        def counted(*a, **k):  # type: ignore[no-untyped-def]
            self.lps += 1
            self.plan_sites = max(self.plan_sites, len(a[0].sites) if a else 0)
            return real(*a, **k)

        monkeypatch.setattr(planner, "solve_lp_or_failure", counted)
        config = pipeline_config(Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=0))
        self.worker = FeederWorker(config,
                                   clock=lambda: FT0 + 30 * 24 * FHOUR)
        # every input partition read to its end and quiet: nothing waits for more input, telemetry applies at once
        self.worker.drained = {(t, 0) for t in (METER_READINGS, CHARGER_TELEMETRY, CHARGER_REGISTRY)}
        self.offset, self.out = 0, []
        self.feed([reg(f"C{i}") for i in range(3)])

    def feed(self, records) -> None:  # type: ignore[no-untyped-def]
        codec = default_codec()
        msgs = []
        for rec in records:
            self.offset += 1
            msgs.append(RawMessage(_TOPIC[type(rec).__name__], 0, self.offset, b"F1", encode_record(codec, rec), None))
        self.out += self.worker.process(msgs, lambda f: None).messages

    def plug_in(self, k: int) -> None:
        self.feed([tel(FT0 + (k + 1) * 60_000, f"C{k}")])

    @property
    def runtime(self):  # type: ignore[no-untyped-def]
        return self.worker.runtimes[b"F1"]


_TOPIC = {"ChargerRegistration": CHARGER_REGISTRY, "SiteRegistration": CHARGER_REGISTRY,
          "ChargerTelemetry": CHARGER_TELEMETRY, "GridSignal": GRID_SIGNALS, "IncentiveResponse": INCENTIVE_RESPONSES}


def _signal(k: int, limit: float | None = None, hours: int = 2) -> GridSignal:
    start = FT0 + (k % 480) * 60_000  # windows spread over the 8 h the cars are plugged in
    return GridSignal(signal_id=f"g{k}", feeder_id="F1", issued_at=FT0, valid_from=start,
                      valid_until=start + hours * FHOUR,
                      import_limit_kw=limit if limit is not None else 30.0 - k % 17, price_per_kwh=0.1 + k / 1e5)


def test_a_flood_of_grid_signals_costs_a_bounded_number_of_lps_per_plan(monkeypatch) -> None:
    f = _Feeder(monkeypatch)
    f.feed([_signal(k) for k in range(2000)] + [_signal(k) for k in range(0, 2000, 7)])  # some sent twice
    for k in range(3):
        f.plug_in(k)
    d = f.runtime.dispatcher
    assert f.worker.accepted[GRID_SIGNALS] == 2286 and len(d.limits.signals) == 2000
    assert f.runtime.plans == 3, "one plan per plug-in, not per signal"
    assert f.lps <= 3 * f.runtime.plans, f"{f.lps} LP solves for {f.runtime.plans} plans"
    report = d.request_report("g0")
    assert report and all(r.baseline_kw is not None for r in report), "the one counterfactual gives every baseline"
    assert d.plan is not None and max(d.plan.fleet_kw) <= 30.0 - 16 + 1e-6, "the lowest limit of the flood binds"


def test_a_flood_of_registrations_costs_nothing_per_plan_for_chargers_never_heard(monkeypatch) -> None:
    f = _Feeder(monkeypatch)
    f.plug_in(0)
    f.feed([reg(f"X{i}") for i in range(3000)] + [reg("C0")] * 1000)  # strangers, and the plugged-in one again
    f.plug_in(1)
    assert f.worker.accepted[CHARGER_REGISTRY] == 4003 and len(f.runtime.chargers) == 3003
    assert set(f.runtime.dispatcher.chargers) == {"C0", "C1"}, "only chargers heard from enter the plan"
    assert f.runtime.plans == 2 and f.lps <= 3 * f.runtime.plans, f"{f.lps} LP solves for {f.runtime.plans} plans"


def test_a_flood_of_site_registrations_adds_no_site_to_a_plan_that_no_plugged_in_asset_names(monkeypatch) -> None:
    f = _Feeder(monkeypatch)
    f.plug_in(0)
    own = [SiteRegistration(site_id="S1", feeder_id="F1", interconnection_class="non_parallel", import_limit_kw=50.0,
                            registered_at=FT0 + i) for i in range(500)]  # the chargers' own site, again and again
    strangers = [SiteRegistration(site_id=f"X{i}", feeder_id="F1", interconnection_class="parallel_exporting",
                                  export_limit_kw=5.0, import_limit_kw=10.0, registered_at=FT0) for i in range(2000)]
    f.feed(own + strangers)
    f.plug_in(1)
    assert f.worker.accepted[CHARGER_REGISTRY] == 3 + len(own) + len(strangers)
    assert len(f.runtime.sites) == 2001
    assert f.runtime.plans == 2 and f.lps <= 3 * f.runtime.plans, f"{f.lps} LP solves for {f.runtime.plans} plans"
    assert f.plan_sites <= 1, f"{f.plan_sites} sites in one LP: only the plugged-in chargers' site may enter"


def test_a_flood_of_responses_accepts_each_offer_once_and_replans_once(monkeypatch) -> None:
    f = _Feeder(monkeypatch)
    f.feed([_signal(0, limit=2.0, hours=9)])  # 3 cars wanting 20 kWh each cannot keep under 2 kW: offers go out
    for k in range(3):
        f.plug_in(k)
    offers = [decode_record(default_codec(), v) for t, _, v in f.out if t == INCENTIVES]
    assert offers, "the broken limit brings offers"
    plans, lps = f.runtime.plans, f.lps
    responses = [IncentiveResponse(offer_id=o.offer_id, feeder_id="F1", customer_id=o.customer_id, accepted=True,
                                   responded_at=FT0 + 4 * 60_000) for o in offers] * 500
    responses += [IncentiveResponse(offer_id=f"offer-unknown-{i}", feeder_id="F1", customer_id="U1", accepted=True,
                                    responded_at=FT0 + 4 * 60_000) for i in range(2000)]
    f.feed(responses)
    f.feed([tel(FT0 + 5 * 60_000, "C0")])  # the next telemetry applies them (a heartbeat: no plug-in)
    f.feed([tel(FT0 + 16 * 60_000, "C0")])  # past the step boundary: the one re-plan
    d = f.runtime.dispatcher
    assert f.worker.accepted[INCENTIVE_RESPONSES] == len(responses)
    assert d.book.accepted == {o.offer_id for o in offers}
    assert f.runtime.plans == plans + 1 and f.lps - lps <= 3, "one re-plan for the whole flood"
    d.dirty = False
    for resp in responses[:len(offers)]:
        d.on_incentive_response(resp)
    assert not d.dirty, "an offer accepted again changes nothing (no re-plan)"
