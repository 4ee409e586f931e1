"""Topics every worker reads whole: a group-less aiokafka reader of every partition.

Weather is not keyed by feeder: a station serves the feeders of many workers. The consumer group gives each
weather partition to one worker (which validates, counts and dead-letters it once); :func:`follow_topic` runs
beside it in every worker, with no group and no commits, from the earliest retained record, so that every
worker applies every observation to the feeders it holds, whatever the partition assignment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from streams.kafka.config import KafkaConnection
from streams.settings import Settings

__all__ = ["follow_topic"]

log = logging.getLogger(__name__)


async def follow_topic(settings: Settings, topic: str, handle: Callable[[list[ConsumerRecord]], Awaitable[None]],
                       batch: int = 2_000, retry_s: float = 5.0) -> None:
    """Hand every record of every partition of ``topic`` to ``handle``, in batches, until cancelled.

    Starts at the earliest retained offset (nothing is committed: ``handle`` must be idempotent). A failure
    of the client is logged and the reader starts again after ``retry_s``.
    """
    while True:
        consumer = AIOKafkaConsumer(
            topic, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
            client_id=f"{settings.app_id}-broadcast", **KafkaConnection.from_settings(settings).aiokafka(),
        )
        try:
            await consumer.start()
            while True:
                fetched = await consumer.getmany(timeout_ms=1_000, max_records=batch)
                records = [r for recs in fetched.values() for r in recs]
                if records:
                    await handle(records)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker restarting, a topic not created yet ...
            log.warning("broadcast reader of %s failed (%s: %s); retrying in %.0f s", topic, type(exc).__name__,
                        exc, retry_s)
            await asyncio.sleep(retry_s)
        finally:
            await consumer.stop()
