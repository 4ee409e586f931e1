"""The evgrid simulator: realistic, deterministic meter, charger and weather streams (pure generators).

>>> from streams.simulate import SimConfig, simulate
>>> msgs = list(simulate(SimConfig(feeders=1, homes=2, chargers=1, hours=1)))
>>> msgs[0].topic, msgs[0].record.charger_id
('evgrid.charger.registry', 'F001-EV001')

Kafka production lives in :mod:`streams.simulate.produce` (the only module here that talks to Kafka).
"""

from streams.simulate.bad import DECODE_DETECTABLE, KIND_REASON, REASON_CODES
from streams.simulate.chargers import SetpointFn
from streams.simulate.config import SimConfig
from streams.simulate.fleet import Fleet, build_fleet, feeder_ids, station_for_feeder
from streams.simulate.sessions import load_acn_sessions
from streams.simulate.stream import SimMessage, SimSummary, iter_records, simulate, summarize

__all__ = [
    "DECODE_DETECTABLE",
    "KIND_REASON",
    "REASON_CODES",
    "Fleet",
    "SetpointFn",
    "SimConfig",
    "SimMessage",
    "SimSummary",
    "build_fleet",
    "feeder_ids",
    "iter_records",
    "load_acn_sessions",
    "simulate",
    "station_for_feeder",
    "summarize",
]
