"""One charger, one controller, across workers: which feeder commands a charger registered on several.

The registry topic is keyed by feeder, so two feeders that name one charger may sit on partitions of two
workers. Every worker follows the whole registry topic (:mod:`streams.kafka.broadcast`) into a
:class:`ChargerOwnership` and applies one rule, a function of the registrations alone (not of the order they
were read in): taken in ``registered_at`` order (then feeder id), an active registration on a feeder while the
charger is held on another is refused (``duplicate_charger``); the charger is free again when its holder
retires it (``active=False``). A feeder that learns late of an earlier holder retires its own registration.
"""

from __future__ import annotations

from streams.contracts.models import ChargerRegistration

__all__ = ["ChargerOwnership"]

KEPT_PER_CHARGER = 64
"""Registrations kept per charger (the newest): a charger moves between feeders a few times in its life."""


class ChargerOwnership:
    """The holder of every charger, from the registrations seen in any order and any number of times.

    Examples
    --------
    >>> own = ChargerOwnership()
    >>> own.note("C1", "F2", registered_at=20, active=True)
    >>> own.holder("C1")
    'F2'
    >>> own.note("C1", "F1", registered_at=10, active=True)  # read later, registered earlier: F1 holds it
    >>> own.holder("C1"), own.refused("C1", "F2", 20)
    ('F1', True)
    >>> own.note("C1", "F1", registered_at=30, active=False)  # retired on F1; F2 must register again
    >>> own.holder("C1") is None
    True
    """

    def __init__(self) -> None:
        self.seen: dict[str, dict[tuple[int, str], bool]] = {}
        self._cache: dict[str, tuple[str | None, frozenset[tuple[int, str]]]] = {}

    def observe(self, reg: ChargerRegistration) -> None:
        """Take a registration into account (see :meth:`note`)."""
        self.note(reg.charger_id, reg.feeder_id, reg.registered_at, reg.active)

    def note(self, charger_id: str, feeder_id: str, registered_at: int, active: bool) -> None:
        """Take a registration into account; seeing one twice changes nothing."""
        seen = self.seen.setdefault(charger_id, {})
        if seen.get((registered_at, feeder_id)) == active:
            return
        seen[(registered_at, feeder_id)] = active
        if len(seen) > KEPT_PER_CHARGER:
            del seen[min(seen)]
        self._cache.pop(charger_id, None)

    def _replay(self, charger_id: str) -> tuple[str | None, frozenset[tuple[int, str]]]:
        hit = self._cache.get(charger_id)
        if hit is not None:
            return hit
        holder: str | None = None
        refused: set[tuple[int, str]] = set()
        for key in sorted(self.seen.get(charger_id, {})):
            feeder = key[1]
            if self.seen[charger_id][key]:
                if holder is None or holder == feeder:
                    holder = feeder
                else:
                    refused.add(key)
            elif holder == feeder:
                holder = None
        self._cache[charger_id] = out = (holder, frozenset(refused))
        return out

    def holder(self, charger_id: str) -> str | None:
        """The feeder that commands ``charger_id`` (None: no feeder may yet)."""
        return self._replay(charger_id)[0]

    def refused(self, charger_id: str, feeder_id: str, registered_at: int) -> bool:
        """Whether that registration is refused: the charger was held on another feeder when it was made."""
        return (registered_at, feeder_id) in self._replay(charger_id)[1]
