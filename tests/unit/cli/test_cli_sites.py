"""``evgrid sites`` without a broker: the record set-status publishes, the history rows, bad input (exit 2)."""

from __future__ import annotations

import pytest

from streams.cli import main
from streams.cli.errors import InputError
from streams.cli.sites import history_rows, with_status
from streams.contracts.models import SiteRegistration

T = 1_767_571_200_000
SITE = SiteRegistration(site_id="S1", feeder_id="F1", interconnection_class="parallel_exporting",
                        export_limit_kw=5.0, registered_at=T)


def test_set_status_keeps_the_agreement_and_registers_after_the_last() -> None:
    new = with_status(SITE, "backup_only", None, T - 5)  # the operator's clock behind the last registration
    assert (new.interconnection_status, new.status_since, new.registered_at) == ("backup_only", T - 5, T + 1)
    assert (new.interconnection_class, new.export_limit_kw) == ("parallel_exporting", 5.0)
    assert with_status(SITE, "approved", T - 86_400_000, T + 10).status_since == T - 86_400_000


@pytest.mark.parametrize(("status", "since"), [("paused", None), ("approved", T + 3_600_000)])
def test_an_unknown_status_or_a_future_date_is_refused(status: str, since: int | None) -> None:
    with pytest.raises(InputError):
        with_status(SITE, status, since, T)


def test_history_is_in_registration_order_for_that_site_only() -> None:
    later = with_status(SITE, "suspended", T + 60_000, T + 60_000)
    other = SITE.model_copy(update={"site_id": "S2"})
    rows = history_rows([later, other, SITE], "S1")
    assert [(r["status"], r["status_since"]) for r in rows] == [("approved", None),
                                                                 ("suspended", "2026-01-05T00:01:00Z")]


def test_bad_cli_input_is_one_line_and_exit_2(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["sites", "set-status", "S1", "paused"]) == 2
    assert main(["sites", "set-status", "S1", "approved", "--since", "yesterday-ish"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "paused" in err[0] and "--since" in err[1]
