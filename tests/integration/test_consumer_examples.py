"""The downstream examples (examples/python, examples/go) decode real setpoints from the local broker.

The setpoints are what the worker's code emits for a small sessions file (in-process), produced keyed by charger
to a fresh namespace's ``evgrid.setpoints``, plus one duplicate of an older sequence that the consumers must
ignore. Each example runs as its own process and must print exactly the setpoints the pipeline made.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams.backtest.inprocess import run_in_process
from streams.backtest.inputs import from_flags
from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerSetpoint, encode_record
from streams.contracts.topics import SETPOINTS, topic_name
from streams.kafka.clients import make_producer
from streams.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(400)]

REPO = Path(__file__).resolve().parents[2]


def _sessions(path: Path) -> Path:
    t0 = dt.datetime(2019, 3, 4, 7, tzinfo=dt.UTC)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session_id", "station_id", "arrival_utc", "departure_utc", "requested_energy_kwh",
                    "max_power_kw", "bidirectional"])
        for i in range(5):
            a = t0 + dt.timedelta(minutes=25 * i)
            w.writerow([f"s{i}", f"CA-{i}", a.isoformat(), (a + dt.timedelta(hours=5)).isoformat(), 10.0, 7.0,
                        "true" if i % 2 else "false"])
    return path


@pytest.fixture
def produced(topic_namespace: Settings, tmp_path: Path) -> tuple[Settings, list[ChargerSetpoint]]:
    inputs = from_flags(_sessions(tmp_path / "s.csv"), step_ms=300_000, import_limit_kw=20.0)
    sps: list[ChargerSetpoint] = run_in_process(inputs, Settings(interval_minutes=5))[SETPOINTS]
    assert len(sps) > 10
    codec = default_codec()
    producer = make_producer(topic_namespace)
    topic = topic_name(SETPOINTS, topic_namespace.topic_prefix)
    for sp in [*sps, sps[0]]:  # the last one repeats an old sequence
        producer.produce(topic, key=sp.charger_id.encode(), value=encode_record(codec, sp), timestamp=sp.issued_at)
    assert producer.flush(30) == 0
    return topic_namespace, sps


def _check(stdout: str, sps: list[ChargerSetpoint]) -> None:
    lines = [json.loads(x) for x in stdout.splitlines() if x.strip()]
    applied, summary = lines[:-1], lines[-1]["summary"]
    assert summary["messages"] == len(sps) + 1
    assert summary["ignored_older_sequence"] == 1
    assert summary["chargers"] == len({sp.charger_id for sp in sps})
    got = sorted((d["charger_id"], d["sequence"], d["setpoint_kw"], d["valid_until"], d["reason"]) for d in applied)
    want = sorted((sp.charger_id, sp.sequence, sp.setpoint_kw, sp.valid_until, sp.reason) for sp in sps)
    assert got == want


def test_python_example_decodes_real_setpoints(produced: tuple[Settings, list[ChargerSetpoint]]) -> None:
    settings, sps = produced
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no evgrid on the path
    proc = subprocess.run([sys.executable, str(REPO / "examples/python/consume_setpoints.py"), "--bootstrap",
                           settings.bootstrap_servers, "--prefix", settings.topic_prefix, "--schemas",
                           str(REPO / "schemas"), "--max-messages", str(len(sps) + 1)], cwd="/",
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(proc.stdout, sps)
    summary = json.loads(proc.stdout.splitlines()[-1])["summary"]
    assert set(summary["power_kw"]) <= {sp.charger_id for sp in sps}


def test_go_example_decodes_real_setpoints(produced: tuple[Settings, list[ChargerSetpoint]], tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("no Go toolchain on this machine")
    settings, sps = produced
    src = REPO / "examples/go/setpoints"
    binary = tmp_path / "setpoints"
    build = subprocess.run(["go", "build", "-o", str(binary), "."], cwd=src, capture_output=True, text=True,
                           timeout=300, check=False)
    assert build.returncode == 0, build.stderr[-3000:]
    proc = subprocess.run([str(binary), "-bootstrap", settings.bootstrap_servers, "-prefix", settings.topic_prefix,
                           "-schemas", str(REPO / "schemas"), "-max", str(len(sps) + 1)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check(proc.stdout, sps)
