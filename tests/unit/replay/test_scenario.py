"""Scenario files: the shipped ones load and name existing inputs; substitution and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.contracts.codec import default_codec
from streams.contracts.models import GridSignal
from streams.contracts.topics import GRID_SIGNALS
from streams.replay.scenario import REPO_ROOT, Scenario, expand_vars, load_scenario, scenario_records

SHIPPED = sorted((REPO_ROOT / "scenarios").glob("*.yaml"))


def test_the_three_scenarios_are_shipped() -> None:
    assert {p.stem for p in SHIPPED} >= {"day-simulated-feeder", "week-v2g-peak-event", "acn-caltech-2019-03"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenarios_load_and_inputs_exist(path: Path) -> None:
    sc = load_scenario(path)
    assert sc.name == path.stem
    assert sc.step_ms > 0 and sc.horizon_ms > 0
    assert sc.start is not None and sc.end is not None and sc.end > sc.start
    for f in sc.input_files():
        assert f.is_file(), f
    assert sc.input_files() or sc.inputs.simulator


def test_acn_scenario_reads_the_shared_sessions() -> None:
    sc = load_scenario(REPO_ROOT / "scenarios" / "acn-caltech-2019-03.yaml")
    assert sc.inputs.sessions is not None and sc.inputs.sessions.name == "caltech_2019-03_sessions.csv"


def test_shared_data_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "acn").mkdir()
    (tmp_path / "acn" / "caltech_2019-03_sessions.csv").write_text("x\n")
    monkeypatch.setenv("EVGRID_SHARED_DATA", str(tmp_path))
    sc = load_scenario(REPO_ROOT / "scenarios" / "acn-caltech-2019-03.yaml")
    assert sc.inputs.sessions == tmp_path / "acn" / "caltech_2019-03_sessions.csv"


def test_week_scenario_records_include_the_dr_event() -> None:
    sc = load_scenario(REPO_ROOT / "scenarios" / "week-v2g-peak-event.yaml")
    streams = scenario_records(sc)
    assert set(streams) == {"sessions", "load", "weather", "grid_signals"}
    (sig,) = streams["grid_signals"]
    assert sig.topic == GRID_SIGNALS and sig.key == b"feeder-1"
    _name, raw = default_codec().decode(sig.value or b"")
    signal = GridSignal.model_validate(raw)
    assert signal.import_limit_kw == 90.0 and signal.dr_event_id == "dr-2019-03-06"
    assert signal.valid_from - signal.issued_at == 2 * 3_600_000
    assert sig.timestamp == signal.issued_at
    for recs in streams.values():
        stamps = [r.timestamp for r in recs]
        assert stamps == sorted(stamps)
        # from the warm-up's start (the history replayed before the week, not scored)
        assert all(sc.start - sc.warmup_ms - 86_400_000 <= t <= sc.end + 7 * 86_400_000  # type: ignore[operator]
                   for t in stamps)


def test_day_scenario_builds_a_simulator_config() -> None:
    pytest.importorskip("streams.simulate.config")
    sc = load_scenario(REPO_ROOT / "scenarios" / "day-simulated-feeder.yaml")
    cfg = sc.sim_config()
    assert cfg.start_ms == sc.start and cfg.hours == 24.0 and cfg.chargers == 30 and cfg.feeders == 1


def test_expand_vars() -> None:
    env = {"A": "/x", "EMPTY": ""}
    assert expand_vars("${A}/b", env) == "/x/b"
    assert expand_vars("${B:-../shared}/c", env) == "../shared/c"
    assert expand_vars("${EMPTY:-d}", env) == "d"
    with pytest.raises(KeyError):
        expand_vars("${B}", env)


def test_relative_paths_resolve_from_repo_then_scenario_dir(tmp_path: Path) -> None:
    (tmp_path / "load.csv").write_text("timestamp,kw\n")
    y = tmp_path / "s.yaml"
    y.write_text("name: s\ninputs:\n  load: load.csv\n")
    assert load_scenario(y).inputs.load == tmp_path / "load.csv"
    sc = load_scenario(y, repo_root=REPO_ROOT)
    assert sc.inputs.load == (tmp_path / "load.csv").resolve()


@pytest.mark.parametrize(("yaml_text", "error"), [
    ("name: s\ninputs:\n  load: nope.csv\n", FileNotFoundError),
    ("name: s\ninputs: {}\n", ValidationError),
    ("name: s\nstep: 5x\ninputs:\n  simulator: {}\n", ValidationError),
    ("name: s\nsettings: {no_such_setting: 1}\ninputs:\n  simulator: {}\n", ValidationError),
    ("name: s\nbogus: 1\ninputs:\n  simulator: {}\n", ValidationError),
    ("name: s\nstart: 2019-03-02T00:00:00Z\nend: 2019-03-01T00:00:00Z\ninputs:\n  simulator: {}\n", ValidationError),
])
def test_invalid_scenarios(tmp_path: Path, yaml_text: str, error: type[Exception]) -> None:
    y = tmp_path / "s.yaml"
    y.write_text(yaml_text)
    with pytest.raises(error):
        load_scenario(y)


def test_durations_and_grid_event_times() -> None:
    sc = Scenario.model_validate({
        "name": "x", "step": "15m", "horizon": "36h", "inputs": {"simulator": {}},
        "grid_signals": [{"signal_id": "s", "valid_from": "2019-03-01T10:00:00Z",
                          "valid_until": "2019-03-01T12:00:00Z", "issued_before": "30m", "import_limit_kw": 5}],
    })
    assert sc.step_ms == 900_000 and sc.horizon_ms == 36 * 3_600_000
    sig = sc.grid_signals[0].to_signal("f1")
    assert sig.valid_until - sig.valid_from == 7_200_000 and sig.valid_from - sig.issued_at == 1_800_000
