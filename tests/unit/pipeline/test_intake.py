"""Intake (control records ahead of meter readings, bounded) and AckSchedule (acks wait for the checkpoint)."""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import given
from hypothesis import strategies as st

from streams.pipeline.intake import AckSchedule, Intake


class Rec(NamedTuple):
    topic: str
    partition: int
    offset: int


def fetch(topic: str, partition: int, first: int, n: int) -> list[Rec]:
    return [Rec(topic, partition, o) for o in range(first, first + n)]


def test_control_records_are_applied_before_meter_readings_fetched_earlier() -> None:
    intake: Intake[Rec] = Intake({"meters"}, max_bulk=100, chunk=3, control_chunk=3)
    intake.add(1, fetch("meters", 0, 0, 5))
    intake.add(1, fetch("meters", 1, 0, 2) + fetch("chargers", 0, 10, 4))
    assert intake.take() == fetch("chargers", 0, 10, 3)  # at most a chunk
    assert intake.take() == fetch("chargers", 0, 13, 1)  # a short chunk: control records are not mixed with bulk
    assert intake.take() == fetch("meters", 0, 0, 3)
    intake.add(1, [Rec("signals", 0, 0)])  # a control record arriving now goes ahead of the meters still waiting
    assert intake.take() == [Rec("signals", 0, 0)]
    assert intake.take() == fetch("meters", 0, 3, 2) + fetch("meters", 1, 0, 1)
    assert intake.take() == fetch("meters", 1, 1, 1)
    assert len(intake) == 0 and intake.take() == []


def test_meter_readings_are_not_starved_by_control_records_that_never_run_dry() -> None:
    intake: Intake[Rec] = Intake({"meters"}, chunk=5, control_chunk=2, control_run=3)
    intake.add(1, fetch("meters", 0, 0, 5) + fetch("chargers", 0, 0, 2))
    topics = []
    for k in range(8):
        intake.add(1, fetch("chargers", 0, 2 + 2 * k, 2))  # a replay: more control records every time
        topics.append(intake.take()[0].topic)
    assert topics == ["chargers"] * 3 + ["meters"] + ["chargers"] * 4  # 3 control chunks, then the meters


def test_fetching_ahead_stops_while_max_bulk_readings_wait() -> None:
    intake: Intake[Rec] = Intake({"meters"}, max_bulk=4, chunk=2, control_chunk=2, control_run=100)
    intake.add(1, fetch("chargers", 0, 0, 50))
    assert intake.wants_more()  # control records do not count against the bound
    intake.add(1, fetch("meters", 0, 0, 4))
    assert not intake.wants_more()
    taken: list[Rec] = []
    while not intake.wants_more():
        taken += intake.take()
    assert len(taken) == 52 and taken[-2:] == fetch("meters", 0, 0, 2)  # the control records, then one chunk


def test_a_new_generation_drops_what_the_old_one_left() -> None:
    intake: Intake[Rec] = Intake({"meters"})
    intake.add(1, fetch("meters", 0, 0, 3) + fetch("chargers", 0, 0, 3))
    intake.take()
    intake.add(2, fetch("meters", 0, 0, 2))  # after a rebalance the consumer re-fetches from the committed offset
    assert intake.generation == 2 and len(intake) == 2
    assert intake.take() == fetch("meters", 0, 0, 2)


@given(st.lists(st.tuples(st.sampled_from(["meters", "chargers", "signals"]), st.integers(0, 2),
                          st.integers(1, 30), st.integers(0, 3)), max_size=30),
       st.integers(1, 40), st.integers(1, 7), st.integers(1, 7), st.integers(1, 4))
def test_every_record_is_taken_once_in_partition_order(fetches: list[tuple[str, int, int, int]], max_bulk: int,
                                                      chunk: int, control_chunk: int, control_run: int) -> None:
    intake: Intake[Rec] = Intake({"meters"}, max_bulk=max_bulk, chunk=chunk, control_chunk=control_chunk,
                                 control_run=control_run)
    next_offset: dict[tuple[str, int], int] = {}
    fetched: list[Rec] = []
    taken: list[Rec] = []
    for topic, partition, n, takes in fetches:
        first = next_offset.get((topic, partition), 0)
        next_offset[(topic, partition)] = first + n
        recs = fetch(topic, partition, first, n)
        fetched += recs
        intake.add(1, recs)
        for _ in range(takes):
            got = intake.take()
            assert len({r.topic == "meters" for r in got}) <= 1
            assert len(got) <= (chunk if got and got[0].topic == "meters" else control_chunk)
            taken += got
    while intake:
        taken += intake.take()
    assert sorted(taken) == sorted(fetched)
    for key in next_offset:
        assert [r.offset for r in taken if (r.topic, r.partition) == key] == list(range(next_offset[key]))


class Keyed(NamedTuple):
    topic: str
    partition: int
    offset: int
    feeder: str
    plug: bool = False


def keyed_intake(**kw: int) -> Intake[Keyed]:
    return Intake({"meters"}, key=lambda r: r.feeder, jumps=lambda r: r.plug, **kw)


def test_a_plug_in_jumps_other_feeders_with_its_own_feeders_earlier_and_later_records() -> None:
    intake = keyed_intake(control_chunk=10)
    boundary = [Keyed("chargers", 0, o, f) for o, f in enumerate("ABCDB")]  # each re-plans its feeder
    intake.add(1, [*boundary, Keyed("meters", 0, 0, "B")])
    plug = Keyed("chargers", 0, 5, "B", plug=True)
    intake.add(1, [Keyed("chargers", 0, 6, "A"), plug, Keyed("chargers", 0, 7, "B"), Keyed("chargers", 0, 8, "C")])
    assert intake.take() == [boundary[1], boundary[4], plug, Keyed("chargers", 0, 7, "B")]
    intake.add(1, [Keyed("chargers", 0, 9, "B")])  # nothing of B waits any more: in turn again
    assert [r.offset for r in intake.take()] == [0, 2, 3, 6, 8, 9]
    assert intake.take() == [Keyed("meters", 0, 0, "B")]


def test_meters_are_not_starved_by_records_that_keep_jumping() -> None:
    """In a fast replay the worker may not know the sessions yet (telemetry held for the meters), so every
    connected charger's record looks like a plug-in; the meters must still go, or that telemetry never
    leaves the hold (except on the wall-clock idle timeout, which would make the replay non-deterministic)."""
    intake = keyed_intake(chunk=5, control_chunk=2, control_run=3)
    intake.add(1, [Keyed("meters", 0, o, "A") for o in range(5)])
    topics = []
    for k in range(8):
        intake.add(1, [Keyed("chargers", 0, 2 * k + i, "AB"[i], plug=True) for i in range(2)])
        topics.append(intake.take()[0].topic)
    assert topics == ["chargers"] * 3 + ["meters"] + ["chargers"] * 4


def test_the_meters_turn_counts_control_records_applied_not_chunks_cut_short() -> None:
    """At an interval end each control record re-plans a feeder, so slices end after a few records; counting
    those short chunks as whole ones would hand the burst of meter readings most of the worker."""
    intake: Intake[Rec] = Intake({"meters"}, chunk=5, control_chunk=4, control_run=2)
    intake.add(1, fetch("meters", 0, 0, 5) + fetch("chargers", 0, 0, 20))
    applied = []
    for _ in range(9):
        got = intake.take()
        intake.put_back(got[1:])  # one record per slice
        applied.append(got[0].topic)
    assert applied == ["chargers"] * 8 + ["meters"]  # 2 chunks' worth = 8 records, then one bulk chunk


def test_records_put_back_after_a_slice_are_taken_first_again() -> None:
    intake = keyed_intake(control_chunk=4)
    intake.add(1, [Keyed("chargers", 0, o, "ABCDEF"[o]) for o in range(6)])
    got = intake.take()
    intake.put_back(got[1:])  # only the first was applied before the slice ended
    intake.add(1, [Keyed("chargers", 0, 6, "G")])
    assert [r.offset for r in intake.take()] == [1, 2, 3, 4]
    plug = Keyed("chargers", 0, 7, "C", plug=True)
    intake.add(1, [plug])
    first = intake.take()
    assert first == [plug]  # C's earlier record was taken already
    intake.put_back(first)
    assert intake.take() == [plug] and [r.offset for r in intake.take()] == [5, 6]


@given(st.lists(st.tuples(st.sampled_from(["meters", "chargers", "signals"]), st.integers(0, 1),
                          st.lists(st.tuples(st.sampled_from("ABC"), st.booleans()), min_size=1, max_size=12),
                          st.integers(0, 3), st.integers(0, 5)), max_size=25),
       st.integers(1, 7), st.integers(1, 5))
def test_jumps_and_put_backs_keep_each_feeders_order_in_every_partition(
        fetches: list[tuple[str, int, list[tuple[str, bool]], int, int]], chunk: int, control_chunk: int) -> None:
    intake = keyed_intake(chunk=chunk, control_chunk=control_chunk, control_run=2)
    next_offset: dict[tuple[str, int], int] = {}
    fetched: list[Keyed] = []
    taken: list[Keyed] = []
    for topic, partition, recs, takes, applied in fetches:
        first = next_offset.get((topic, partition), 0)
        next_offset[(topic, partition)] = first + len(recs)
        batch = [Keyed(topic, partition, first + i, f, plug and topic != "meters") for i, (f, plug) in enumerate(recs)]
        fetched += batch
        intake.add(1, batch)
        for _ in range(takes):
            got = intake.take()
            if got and applied < len(got):
                intake.put_back(got[applied:])  # the slice ran out of time
                got = got[:applied]
            taken += got
    while intake:
        taken += intake.take()
    assert sorted(taken) == sorted(fetched)  # each exactly once
    for topic, partition in next_offset:
        for feeder in "ABC":
            offsets = [r.offset for r in taken if (r.topic, r.partition, r.feeder) == (topic, partition, feeder)]
            assert offsets == sorted(offsets)
    for partition in (0, 1):  # meters are never reordered
        offsets = [r.offset for r in taken if (r.topic, r.partition) == ("meters", partition)]
        assert offsets == sorted(offsets)


def test_acks_wait_for_the_checkpoint_of_their_partition() -> None:
    acks: AckSchedule[Rec] = AckSchedule(5.0, now=100.0, partition=lambda r: r.partition)
    acks.applied(fetch("meters", 0, 0, 2) + fetch("chargers", 1, 0, 1) + fetch("chargers", 0, 7, 1))
    assert acks.due(104.9) == []
    assert acks.due(105.0) == [0]  # both are due, but at most ceil(2 partitions / 5 s) = 1 per call
    acks.applied(fetch("meters", 0, 2, 1))
    assert acks.checkpointed(105.0, [0]) == fetch("meters", 0, 0, 2) + fetch("chargers", 0, 7, 1) + \
        fetch("meters", 0, 2, 1)  # everything applied of partition 0 before the checkpoint
    assert acks.due(105.5) == [1]  # the oldest, not yet checkpointed
    assert acks.checkpointed(106.0, [1]) == fetch("chargers", 1, 0, 1)
    assert acks.due(110.0) == [0] and acks.due(111.0) == [0]  # 0 was checkpointed before 1
    acks.applied(fetch("meters", 1, 0, 1))
    assert acks.checkpointed(107.0) == fetch("meters", 1, 0, 1)  # all partitions, e.g. before partitions move
    acks.applied(fetch("meters", 3, 0, 1))  # partitions come and go at a rebalance
    assert acks.due(111.0) == [] and acks.due(112.0) == [3]  # only those seen since, counted from then


def test_checkpoints_of_many_partitions_spread_over_the_period() -> None:
    acks: AckSchedule[Rec] = AckSchedule(5.0, now=0.0, partition=lambda r: r.partition)
    per_second = []
    for second in range(1, 31):
        acks.applied([Rec("meters", p, second) for p in range(8)])
        due = acks.due(float(second))
        per_second.append(len(due))
        acks.checkpointed(float(second), due)
    assert max(per_second) == 2  # ceil(8 / 5)
    assert sum(per_second[10:]) == 20 * 8 // 5  # in the steady state every partition every 5 s
