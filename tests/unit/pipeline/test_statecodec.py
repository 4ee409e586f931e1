"""The state format: what it holds, what it refuses, and that no bytes make decoding raise anything else."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import random
import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river.utils import VectorDict

from streams.contracts.topics import CHARGER_REGISTRY, CHARGER_TELEMETRY, METER_READINGS
from streams.pipeline import statecodec
from streams.pipeline.feeder import FeederRuntime, Output
from streams.pipeline.statecodec import FORMAT_VERSION, MAGIC, StateDecodeError, StateEncodeError, decode, encode
from streams.settings import Settings, feeder_config
from tests.fixtures.feeder_records import T0, reg, tel
from tests.fixtures.state_classes import ALLOWED, Plain, sample
from tests.unit.pipeline.test_feeder_runtime import MIN, meter, raw

FIXTURES = Path(__file__).parents[2] / "fixtures"


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (numpy arrays: dtype, shape, layout and values)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.flags.f_contiguous == b.flags.f_contiguous \
            and a.flags.c_contiguous == b.flags.c_contiguous and np.array_equal(a, b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, random.Random):
        return a.getstate() == b.getstate()
    if isinstance(a, Plain):
        return same(vars(a), vars(b))
    if isinstance(a, VectorDict):
        return same(a.to_dict(), b.to_dict())
    return bool(a == b)


def blob_of_tree(tree: Any, version: int = FORMAT_VERSION) -> bytes:
    """A blob with a valid header around any msgpack tree (what a forger writes to the changelog)."""
    return MAGIC + bytes([version]) + zstandard.ZstdCompressor().compress(msgpack.packb(tree, use_bin_type=True))


# --- what it holds --------------------------------------------------------------------------------
def test_every_kind_round_trips_with_its_type_and_shared_objects_stay_shared() -> None:
    graph = sample()
    back = decode(encode(graph, ALLOWED), ALLOWED)
    assert list(back) == list(graph)
    for key in graph:
        assert same(back[key], graph[key]), key
    assert back["shared"][0] is back["shared"][1]
    assert back["deque"].maxlen == 5 and back["defaultdict"]["new"] == 0.0
    assert back["arrays"][1].flags.f_contiguous and back["arrays"][0].flags.writeable


def test_a_blob_of_format_version_1_still_decodes() -> None:
    """The committed blob (tests/fixtures/state_v1.bin) must stay readable by every later version."""
    blob = (FIXTURES / "state_v1.bin").read_bytes()
    assert blob[:5] == MAGIC + b"\x01"
    back = decode(blob, ALLOWED)
    graph = sample()
    for key in graph:
        assert same(back[key], graph[key]), key
    assert back["shared"][0] is back["shared"][1]


def test_a_value_it_cannot_hold_fails_at_encode_time_naming_where_it_is() -> None:
    with pytest.raises(StateEncodeError, match=r"builtins\.function .* at \['a'\]\[1\]"):
        encode({"a": [1, lambda: 0]})
    with pytest.raises(StateEncodeError, match=r"builtins\.function .* at \.items\[1\]"):
        encode(Plain([1, lambda: 0]), ALLOWED)
    with pytest.raises(StateEncodeError, match=r"tests\.fixtures\.state_classes\.Point .* at \['x'\]\[0\]"):
        encode({"x": [sample()["named_tuple"]]})  # its module is not allowed by default
    with pytest.raises(StateEncodeError, match="dtype"):
        encode(np.array([object()]))
    with pytest.raises(StateEncodeError, match="defaultdict factory"):
        encode(defaultdict(lambda: 1))
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(StateEncodeError, match="cycle"):
        encode(loop)
    with pytest.raises(StateEncodeError, match="64 bits"):
        encode(2**64)


# --- a feeder runtime and its forecaster ------------------------------------------------------------
def fed_runtime(model: str) -> tuple[FeederRuntime, list[tuple[Any, Any, int]]]:
    """A runtime fed 2 chargers and 2 days of meter readings and telemetry; and the next day's inputs."""
    rt = FeederRuntime("F1", feeder_config(Settings(interval_minutes=15, grace_seconds=300, align_idle_seconds=30,
                                      forecast_model=model)))
    inputs: list[tuple[Any, Any, int]] = [(reg("C1"), raw(CHARGER_REGISTRY, 0), 0),
                                          (reg("C2"), raw(CHARGER_REGISTRY, 1), 0)]
    for i in range(1, 2 * 288):
        ts, wall = T0 + i * 5 * MIN, i
        inputs.append((meter(ts, kw=3 + i % 7), raw(METER_READINGS, i), wall))
        if i % 3 == 0:
            cid = "C1" if i % 2 else "C2"
            inputs.append((tel(ts, cid=cid, connected=(i // 60) % 3 != 0), raw(CHARGER_TELEMETRY, i), wall))
    cut = 2 * len(inputs) // 3
    for record, msg, wall in inputs[:cut]:
        rt.apply(record, msg, wall)
    return rt, inputs[cut:]


def run(rt: FeederRuntime, inputs: list[tuple[Any, Any, int]]) -> list[Output]:
    out: list[Output] = []
    for record, msg, wall in inputs:
        out += rt.apply(record, msg, wall)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("model", ["fls", "river-linear"])
def test_a_restored_runtime_gives_exactly_the_outputs_of_the_original(model: str) -> None:
    rt, rest = fed_runtime(model)
    assert rt.plans and rt.forecaster.closed and rt.active == {"C1", "C2"}
    state, forecaster = rt.dump()
    assert forecaster is not None and state[:4] == forecaster[:4] == MAGIC
    restored = FeederRuntime.load(state, forecaster)
    assert type(restored.forecaster.model).__name__ == ("ForgettingLeastSquares" if model == "fls" else "RiverLinear")
    expected, got = run(rt, rest), run(restored, rest)
    assert [o for o in expected if o[0] == "evgrid.setpoints"], "the next inputs plan"
    assert got == expected
    for r in (rt, restored):  # the one wall-clock figure in the state: how long the last solve took
        r.dispatcher.plan = dataclasses.replace(r.dispatcher.plan, solve_seconds=0.0)
    assert rt.dump()[0] == restored.dump()[0], "and the same state after them"


@pytest.mark.slow
def test_load_refuses_blobs_that_are_not_a_runtime_state() -> None:
    state, model = dumped("fls")
    with pytest.raises(StateDecodeError, match="FeederForecaster"):
        FeederRuntime.load(state, state)
    with pytest.raises(StateDecodeError, match="not the state"):
        FeederRuntime.load(model, model)
    with pytest.raises(StateDecodeError, match="not the state"):
        FeederRuntime.load(encode({"feeder_id": 1}), model)


def _river_models() -> dict[str, Callable[[], Any]]:
    from river import ensemble, forest, linear_model, optim, preprocessing, tree

    return {
        "BayesianLinearRegression": linear_model.BayesianLinearRegression,
        "StandardScaler|LinearRegression": lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(),
        "EWARegressor": lambda: ensemble.EWARegressor(
            [linear_model.LinearRegression(optimizer=optim.SGD(lr)) for lr in (0.01, 0.05)]),
        "BaggingRegressor": lambda: ensemble.BaggingRegressor(linear_model.LinearRegression(), n_models=3, seed=1),
        "HoeffdingTreeRegressor": lambda: tree.HoeffdingTreeRegressor(grace_period=50),
        "HoeffdingAdaptiveTreeRegressor": lambda: tree.HoeffdingAdaptiveTreeRegressor(grace_period=50, seed=1),
        "ARFRegressor": lambda: forest.ARFRegressor(n_models=2, seed=1),
    }


def stream(seed: int, n: int) -> list[tuple[dict[str, float], float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        x = {f"x{j}": rng.random() for j in range(4)}
        rows.append((x, 2 * x["x0"] - x["x1"] + 0.3 * rng.random()))
    return rows


@pytest.mark.parametrize("name", list(_river_models()))
def test_river_estimators_round_trip_and_then_learn_and_predict_as_the_original(name: str) -> None:
    model = _river_models()[name]()
    for x, y in stream(1, 400):
        model.learn_one(x, y)
    restored = decode(encode(model))
    assert type(restored) is type(model)
    predictions = []
    for x, y in stream(2, 200):
        predictions.append((model.predict_one(x), restored.predict_one(x)))
        model.learn_one(x, y)
        restored.learn_one(x, y)
    assert all(a == b for a, b in predictions), predictions[:3]


def test_a_river_pipeline_still_learns_through_its_steps() -> None:
    """The pipeline keeps its steps in several attributes: they must stay the same objects."""
    model = _river_models()["StandardScaler|LinearRegression"]()
    for x, y in stream(1, 50):
        model.learn_one(x, y)
    restored = decode(encode(model))
    assert restored.steps["LinearRegression"] is restored._last_step_cached


# --- what it refuses --------------------------------------------------------------------------------
FORGED = [
    [statecodec.OBJECT, "os:system"],
    [statecodec.OBJECT, "subprocess:Popen", "args", "touch /tmp/pwned"],
    [statecodec.OBJECT, "builtins:eval"],
    [statecodec.MODEL, "subprocess:Popen", [statecodec.DICT, "args", "id"]],
    [statecodec.ENUM, "os:system", 1],
    [statecodec.NAMEDTUPLE, "builtins:eval", "1"],
    [statecodec.FUNCTION, "os:system"],
    [statecodec.FUNCTION, "streams.pipeline.worker:os.system"],
    [statecodec.OBJECT, "streams.pipeline.worker:os.system"],  # a module reached from an allowed one
    [statecodec.OBJECT, "streams.pipeline.worker:Counter"],  # a class imported into an allowed module
    [statecodec.OBJECT, "streams.pipeline.statecodec:BaseModel"],
    [statecodec.OBJECT, "streams.pipeline.statecodec:NormalDist", "_mu", 1.0],  # plain, but from statistics
    [statecodec.OBJECT, "streams.pipeline.statecodec:zstandard.ZstdCompressor"],
    [statecodec.OBJECT, "streams.pipeline.statecodec:decode"],  # a function, not a class
    [statecodec.OBJECT, "streams.pipeline.statecodec:StateDecodeError.__init__"],
    [statecodec.OBJECT, "streamsx.evil:Thing"],
    [statecodec.OBJECT, "river.__main__:Thing"],  # importing a __main__ module would run it
    [statecodec.OBJECT, "streams.pipeline.feeder:FeederRuntime", "__class__", [statecodec.OBJECT, "os:system"]],
    [statecodec.OBJECT, "streams.pipeline.feeder:FeederRuntime", "__dict__", [statecodec.DICT]],
    [statecodec.DEFAULTDICT, "eval", "a", 1],
    [statecodec.NDARRAY, "|O", [1], "C", b"\x00" * 8],
]


@pytest.mark.parametrize("tree", FORGED, ids=[str(t[1])[:40] for t in FORGED])
def test_a_forged_blob_naming_what_is_not_allowed_is_refused(tree: list[Any], monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[Any] = []
    monkeypatch.setattr(os, "system", lambda *a: called.append(a))
    monkeypatch.setattr(subprocess.Popen, "__init__", lambda *a, **k: called.append(a))
    with pytest.raises(StateDecodeError):
        decode(blob_of_tree([statecodec.LIST, tree]))
    assert called == []


def test_another_version_or_header_is_refused() -> None:
    good = encode([1, 2])
    assert decode(good) == [1, 2]
    for bad in (blob_of_tree([statecodec.LIST], version=FORMAT_VERSION + 1), b"", MAGIC, b"\x80\x05" + good,
                good[:-3]):
        with pytest.raises(StateDecodeError):
            decode(bad)


# --- fuzz: whatever the bytes, only StateDecodeError ------------------------------------------------
def _decodes_or_refuses(blob: bytes) -> None:
    with contextlib.suppress(StateDecodeError):  # any other exception fails the test
        decode(blob)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_only_raise_state_decode_error(data: bytes) -> None:
    _decodes_or_refuses(data)
    _decodes_or_refuses(MAGIC + bytes([FORMAT_VERSION]) + data)


@functools.cache
def dumped(model: str) -> tuple[bytes, bytes]:
    """The two checkpoint blobs of :func:`fed_runtime`."""
    state, forecaster = fed_runtime(model)[0].dump()
    assert forecaster is not None
    return state, forecaster


def _body(blob: bytes) -> bytes:
    return zstandard.ZstdDecompressor().decompress(blob[5:])


@pytest.mark.slow
@FUZZ
@given(st.data())
def test_mutated_valid_blobs_only_raise_state_decode_error(data: st.DataObject) -> None:
    blob = data.draw(st.sampled_from([*dumped("fls"), *dumped("river-linear")]))
    body = bytearray(_body(blob))
    for _ in range(data.draw(st.integers(1, 8))):  # flip, drop or insert bytes of the msgpack body
        i = data.draw(st.integers(0, len(body) - 1))
        op = data.draw(st.sampled_from(["flip", "drop", "insert", "truncate"]))
        if op == "flip":
            body[i] ^= data.draw(st.integers(1, 255))
        elif op == "drop":
            del body[i]
        elif op == "insert":
            body.insert(i, data.draw(st.integers(0, 255)))
        else:
            del body[i:]
        if not body:
            break
    _decodes_or_refuses(MAGIC + bytes([FORMAT_VERSION]) + zstandard.ZstdCompressor().compress(bytes(body)))
    raw_blob = bytearray(blob)  # and the compressed bytes themselves
    i = data.draw(st.integers(5, len(raw_blob) - 1))
    raw_blob[i] ^= data.draw(st.integers(1, 255))
    _decodes_or_refuses(bytes(raw_blob))


NAMES = st.sampled_from(["streams.pipeline.feeder:FeederRuntime", "streams.forecasting.models:RiverLinear",
                         "river.linear_model.lin_reg:LinearRegression", "os:system", "builtins:eval", "x"])
TREES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=16) | NAMES,
    lambda children: st.lists(children, max_size=6)
    | st.tuples(st.integers(0, 27), st.lists(children, max_size=5)).map(lambda kx: [kx[0], *kx[1]])
    | st.tuples(st.integers(0, 27), NAMES, st.lists(children, max_size=5)).map(lambda k: [k[0], k[1], *k[2]]),
    max_leaves=40)


@pytest.mark.slow
@FUZZ
@given(TREES)
def test_arbitrary_node_trees_only_raise_state_decode_error(tree: Any) -> None:
    _decodes_or_refuses(blob_of_tree(tree))
