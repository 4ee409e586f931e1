"""faust's private internals used by :mod:`streams.kafka.faust_internals` still exist as that module expects.

A faust (or aiokafka) upgrade that renames, removes or re-signs one of them fails here, by name, before a worker
silently falls back to faust's per-record path or breaks at run time.
"""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams.agents.app import create_app
from streams.kafka import faust_internals
from streams.kafka.faust_internals import (
    FETCH_MAX_WAIT_MS,
    PRIVATE_ATTRIBUTES,
    PRIVATE_METHODS,
    BatchConsumer,
    ShortWaitConsumerThread,
)
from streams.settings import Settings

OWN_PRIVATE = {"_control_turn_taken", "_batch_channel", "_deliver"}
"""Private names the module defines itself (not faust's)."""


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


METHODS = [(owner, name, params) for owner, methods in PRIVATE_METHODS.items() for name, params in methods.items()]


@pytest.mark.parametrize(("owner", "name", "params"), METHODS,
                         ids=[f"{o.rsplit('.', 1)[1]}.{n}" for o, n, _ in METHODS])
def test_each_private_method_still_exists_with_the_same_parameters(owner: str, name: str,
                                                                   params: tuple[str, ...]) -> None:
    cls = _resolve(owner)
    method = getattr(cls, name, None)
    assert method is not None, f"faust upgrade: {owner}.{name} is gone (streams/kafka/faust_internals.py uses it)"
    assert tuple(inspect.signature(method).parameters) == params, (
        f"faust upgrade: {owner}.{name}{inspect.signature(method)} no longer takes {params}")


def test_the_overridden_consumer_methods_are_the_ones_faust_calls() -> None:
    from faust.transport.consumer import Fetcher

    # faust's fetcher drives the consumer through _drain_messages; its getmany reads through _wait_next_records
    assert "._drain_messages(" in inspect.getsource(Fetcher)
    from faust.transport.consumer import Consumer as Base

    assert "._wait_next_records(" in inspect.getsource(Base.getmany)
    for name in ("_new_consumer_thread", "_wait_next_records", "_drain_messages"):
        assert name in BatchConsumer.__dict__ and any(name in c.__dict__ for c in BatchConsumer.__mro__[1:])


def test_the_messages_built_by_hand_have_faust_s_field_order() -> None:
    from faust.types.tuples import ConsumerMessage

    params = tuple(inspect.signature(ConsumerMessage).parameters)
    assert params[:11] == ("topic", "partition", "offset", "timestamp", "timestamp_type", "headers", "key", "value",
                           "checksum", "serialized_key_size", "serialized_value_size")
    assert params[11] == "tp" and "generation_id" in params


def _private_names_used() -> set[str]:
    tree = ast.parse(Path(faust_internals.__file__).read_text())
    return {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
            and n.attr.startswith("_") and not n.attr.startswith("__")}


def test_every_private_name_the_module_touches_is_declared() -> None:
    declared = {n for methods in PRIVATE_METHODS.values() for n in methods}
    declared |= {n for names in PRIVATE_ATTRIBUTES.values() for n in names}
    undeclared = _private_names_used() - declared - OWN_PRIVATE
    assert not undeclared, f"declare these in PRIVATE_METHODS/PRIVATE_ATTRIBUTES so they are checked: {undeclared}"
    assert "_drain_messages" in _private_names_used()  # the scan sees what the module does


async def _objects(tmp_path: Path) -> tuple[Any, Any, Any]:
    app = create_app(Settings(topic_prefix="unit-batching.", data_dir=str(tmp_path)))
    ours = app.consumer._thread
    plain = AIOKafkaConsumerThread(app.consumer, loop=app.loop, beacon=app.beacon)
    assert isinstance(ours, ShortWaitConsumerThread)
    waits = []
    for thread in (ours, plain):
        consumer = thread._create_worker_consumer(app.consumer.transport)  # not started: no broker needed
        waits.append(consumer._fetch_max_wait_ms)
        assert all(hasattr(consumer, a) for a in PRIVATE_ATTRIBUTES["aiokafka consumer"])
        await consumer.stop()
    return app, waits[0], waits[1]


def test_the_worker_consumer_lets_the_broker_hold_a_fetch_for_100_ms_not_faust_s_1500(tmp_path: Path) -> None:
    _, ours, faust_default = asyncio.run(_objects(tmp_path))
    assert faust_default == 1500  # what a quiet meter partition in a fetch request used to cost the telemetry
    assert ours == FETCH_MAX_WAIT_MS == 100


def test_the_private_attributes_exist_on_a_worker_s_objects(tmp_path: Path) -> None:
    from faust.transport.consumer import Fetcher

    app, _, _ = asyncio.run(_objects(tmp_path))
    consumer = app.consumer
    assert isinstance(consumer, BatchConsumer)
    missing = [a for a in PRIVATE_ATTRIBUTES["faust consumer"] if not hasattr(consumer, a)]
    assert not missing, f"faust upgrade: the consumer has no {missing}"
    fetcher = Fetcher(app=app)
    assert all(hasattr(fetcher, a) for a in PRIVATE_ATTRIBUTES["faust fetcher"])
    channel = app.channel(maxsize=4)
    assert all(hasattr(channel.queue, a) for a in PRIVATE_ATTRIBUTES["channel queue (asyncio.Queue)"])
    for name in ("consumer_generation_id", "rebalancing"):
        assert hasattr(app, name), f"faust upgrade: App.{name} is gone"
    for name in ("flow_active", "can_resume_flow", "suspend_flow", "should_stop", "consumer_stopped_errors",
                 "highwater", "position", "assignment", "ack", "commit", "perform_seek", "wait_first", "callback"):
        assert hasattr(consumer, name), f"faust upgrade: the consumer has no {name}"
    assert hasattr(app.monitor, "track_tp_end_offset")
