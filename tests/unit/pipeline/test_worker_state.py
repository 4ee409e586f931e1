"""FeederWorker checkpoints: unambiguous table keys, and a checkpoint that does not decode starts its feeder fresh."""

from __future__ import annotations

import logging

import msgpack
import pytest
import zstandard

from streams.contracts.topics import FORECASTS, METER_READINGS
from streams.pipeline import statecodec
from streams.pipeline.worker import MODEL_KEY, STATE_KEY
from tests.fixtures.feeder_records import T0
from tests.unit.pipeline.test_worker import meter_msg, worker

STEP = 900_000


def readings(feeders: list[str], first: int, last: int) -> list:
    """Meter readings of each feeder for intervals ``first..last-1`` (offset = feeder index * 1000 + interval)."""
    return [meter_msg(f, n * 1000 + i, T0 + (i + 1) * STEP) for i in range(first, last) for n, f in enumerate(feeders)]


def forged() -> bytes:
    """A well-formed blob whose state names ``os:system``, as someone with write access to the changelog might."""
    tree = [statecodec.OBJECT, "os:system", "x", 1]
    return statecodec.MAGIC + b"\x01" + zstandard.ZstdCompressor().compress(msgpack.packb(tree))


def test_a_checkpoint_that_does_not_decode_starts_that_feeder_fresh_and_the_others_carry_on(
        caplog: pytest.LogCaptureFixture) -> None:
    feeders = ["F1", "F2", "F3", "F4"]
    before = worker()
    before.process(readings(feeders, 0, 8), lambda f: None, checkpoint=False)
    table = {k: v for k, _, v in before.checkpoint().checkpoints}
    table[STATE_KEY + b"F2"] = b"\x80\x05garbage"  # not a state blob at all
    table[MODEL_KEY + b"F3"] = table[MODEL_KEY + b"F3"][:-20]  # truncated
    table[STATE_KEY + b"F4"] = forged()
    after = worker()
    with caplog.at_level(logging.WARNING, logger="streams.pipeline.worker"):
        out = after.process(readings(feeders, 0, 10), table.get)  # re-read from the committed offsets
    assert after.counters()["state_decode_failures"] == 3
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "b'F2'" in warned and "b'F3'" in warned and "b'F4'" in warned and "os:system" in warned
    assert "b'F1'" not in warned
    assert after.skipped_replayed == 8, "F1 restored: the 8 readings it had applied are skipped"
    assert after.runtimes[b"F1"].offsets[(METER_READINGS, 0)] == 9
    never_saved = worker()
    never_saved.process(readings(feeders, 0, 10), lambda f: None)
    for f in (b"F2", b"F3", b"F4"):  # fresh: as if they had never been checkpointed
        assert after.runtimes[f].dump() == never_saved.runtimes[f].dump()
    assert after.runtimes[b"F1"].dump()[0] == never_saved.runtimes[b"F1"].dump()[0]
    assert after.accepted[METER_READINGS] == 2 + 3 * 10
    assert {m[1] for m in out.messages if m[0] == FORECASTS} == {b"F1", b"F2", b"F3", b"F4"}
    assert {k for k, _, _ in out.checkpoints} >= {STATE_KEY + f.encode() for f in feeders}, \
        "every feeder checkpoints again, the fresh ones over their bad entries"


def test_table_keys_of_different_feeders_never_collide() -> None:
    """A kind byte before the feeder id keeps every (kind, feeder) pair apart (with the old suffix scheme the
    state of feeder ``F1\\x00model`` was the model entry of ``F1``)."""
    feeders = ["F1", "MF1", "SF1", "SMF1"]
    w = worker()
    w.process(readings(feeders, 0, 4), lambda f: None, checkpoint=False)
    table = {k: v for k, _, v in w.checkpoint().checkpoints}
    assert len(table) == 2 * len(feeders)
    restored = worker()
    restored.process(readings(feeders, 0, 5), table.get)
    assert restored.counters()["state_decode_failures"] == 0
    assert {f: restored.runtimes[f.encode()].feeder_id for f in feeders} == {f: f for f in feeders}
    assert restored.skipped_replayed == 4 * len(feeders)
