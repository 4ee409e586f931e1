"""The charger ownership rule (issue 14, one charger one controller) depends on the registrations, not on the
order workers read them in; checked against the rule as written, computed here apart."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.pipeline.ownership import ChargerOwnership

Reg = tuple[int, str, bool]  # (registered_at, feeder, active)
regs = st.lists(st.tuples(st.integers(0, 30), st.sampled_from(["F1", "F2", "F3"]), st.booleans()),
                max_size=12, unique_by=lambda r: (r[0], r[1]))


def rule(registrations: list[Reg]) -> tuple[str | None, set[tuple[int, str]]]:
    """The rule as the issue words it: in ``registered_at`` order, an active registration while another feeder
    holds the charger is refused; retiring frees it."""
    holder: str | None = None
    refused: set[tuple[int, str]] = set()
    for at, feeder, active in sorted(registrations):
        if not active:
            holder = None if holder == feeder else holder
        elif holder in (None, feeder):
            holder = feeder
        else:
            refused.add((at, feeder))
    return holder, refused


@settings(max_examples=300, deadline=None)
@given(regs, st.randoms(use_true_random=False))
def test_the_holder_does_not_depend_on_the_reading_order(registrations: list[Reg], rnd) -> None:
    shuffled = list(registrations)
    rnd.shuffle(shuffled)
    own = ChargerOwnership()
    for at, feeder, active in shuffled + shuffled[: len(shuffled) // 2]:  # some read twice (a restart)
        own.note("C1", feeder, at, active)
    holder, refused = rule(registrations)
    assert own.holder("C1") == holder
    assert {(at, f) for at, f, _ in registrations if own.refused("C1", f, at)} == refused


def test_an_unknown_charger_has_no_holder_and_refuses_nothing() -> None:
    own = ChargerOwnership()
    assert own.holder("C9") is None and not own.refused("C9", "F1", 0)
