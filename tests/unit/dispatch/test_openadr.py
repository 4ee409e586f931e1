"""OpenADR 3 events (IMPORT_CAPACITY_LIMIT, EXPORT_CAPACITY_LIMIT, PRICE) to GridSignals."""

from __future__ import annotations

import numpy as np
import pytest

from streams.dispatch.dispatcher import FeederDispatcher
from streams.dispatch.openadr import OpenADRError, iso_duration_ms, openadr_event_to_signals

H = 3_600_000
START = 1_718_643_600_000  # 2024-06-17T17:00:00Z

CAPACITY_EVENT = {
    "id": "evt-42", "programID": "prog-1", "eventName": "evening-cap",
    "createdDateTime": "2024-06-17T08:00:00Z", "modificationDateTime": "2024-06-17T09:00:00Z",
    "targets": [{"type": "FEEDER_ID", "values": ["F7"]}],
    "payloadDescriptors": [
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "IMPORT_CAPACITY_LIMIT", "units": "KW"},
        {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "EXPORT_CAPACITY_LIMIT", "units": "MW"}],
    "intervalPeriod": {"start": "2024-06-17T17:00:00Z", "duration": "PT1H"},
    "intervals": [
        {"id": 0, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [300]},
                               {"type": "EXPORT_CAPACITY_LIMIT", "values": [0.05]}]},
        {"id": 1, "payloads": [{"type": "IMPORT_CAPACITY_LIMIT", "values": [250.5]}]},
    ],
}

PRICE_EVENT = {
    "id": "tou-1", "createdDateTime": "2024-06-16T12:00:00Z",
    "targets": [{"type": "GROUP", "values": ["feeder:F7"]}, {"type": "SITE_ID", "values": ["bld-1", "home-9"]}],
    "payloadDescriptors": [{"payloadType": "PRICE", "units": "MWH", "currency": "EUR"}],
    "intervalPeriod": {"start": "2024-06-17T00:00:00Z", "duration": "PT15M"},
    "intervals": [
        {"id": 7, "intervalPeriod": {"start": "2024-06-17T17:00:00Z", "duration": "PT2H"},
         "payloads": [{"type": "PRICE", "values": [412.0]}]},
        {"id": 8, "payloads": [{"type": "SIMPLE", "values": [1]}]},
    ],
}


def test_capacity_limits_become_feeder_signals_one_per_interval():
    sigs = openadr_event_to_signals(CAPACITY_EVENT)
    assert [(s.signal_id, s.feeder_id, s.site_id, s.valid_from, s.valid_until) for s in sigs] == [
        ("oadr:evt-42:0", "F7", None, START, START + H), ("oadr:evt-42:1", "F7", None, START + H, START + 2 * H)]
    assert sigs[0].import_limit_kw == 300.0 and sigs[0].export_limit_kw == pytest.approx(50.0)  # MW -> kW
    assert sigs[1].import_limit_kw == 250.5 and sigs[1].export_limit_kw is None and sigs[1].price_per_kwh is None
    assert {s.dr_event_id for s in sigs} == {"evt-42"}
    assert sigs[0].issued_at == START - 8 * H  # modificationDateTime, not the clock


def test_prices_per_site_with_their_own_interval_period_and_unit_scaling():
    sigs = openadr_event_to_signals(PRICE_EVENT)
    assert [(s.signal_id, s.site_id) for s in sigs] == [("oadr:tou-1:7:bld-1", "bld-1"),
                                                        ("oadr:tou-1:7:home-9", "home-9")]
    for s in sigs:
        assert s.price_per_kwh == pytest.approx(0.412) and s.currency == "EUR"  # per MWh -> per kWh
        assert (s.valid_from, s.valid_until) == (START, START + 2 * H)
        assert s.import_limit_kw is None and s.feeder_id == "F7"


def test_feeder_from_the_argument_and_errors():
    ev = {**CAPACITY_EVENT, "targets": []}
    assert {s.feeder_id for s in openadr_event_to_signals(ev, feeder_id="F1")} == {"F1"}
    with pytest.raises(OpenADRError, match="no feeder"):
        openadr_event_to_signals(ev)
    with pytest.raises(OpenADRError, match="duration"):
        openadr_event_to_signals({**CAPACITY_EVENT, "intervalPeriod": {"start": "2024-06-17T17:00:00Z",
                                                                        "duration": "one hour"}})
    assert openadr_event_to_signals({**CAPACITY_EVENT, "intervals": [{"id": 0, "payloads": [
        {"type": "SIMPLE", "values": [2]}]}]}) == []


def test_iso_durations():
    assert iso_duration_ms("PT15M") == 15 * 60_000
    assert iso_duration_ms("P1DT2H30M") == (26 * 60 + 30) * 60_000
    assert iso_duration_ms("PT0.5S") == 500
    assert iso_duration_ms("P9999Y") is None  # OpenADR: open-ended


def test_an_openadr_cap_is_honoured_by_the_dispatcher():
    d = FeederDispatcher("F7")
    for s in openadr_event_to_signals(CAPACITY_EVENT):
        d.on_signal(s)
    imp, exp, _ = d.limits.profile(np.array([START, START + H, START + 2 * H]))
    assert list(imp) == [300.0, 250.5] and exp[0] == pytest.approx(50.0)  # the signal sets the export limit
    assert exp[1] == pytest.approx(0.0)  # no export signal there: the default (0)
    assert {t for t in d.trackers} == {"oadr:evt-42:0", "oadr:evt-42:1"}
