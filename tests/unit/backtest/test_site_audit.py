"""The backtest audit counts site-level breaches (issue 14), and sessions CSVs name sites."""

from __future__ import annotations

import pytest

from streams.backtest.metrics import audit_sites
from streams.contracts.models import MeterReading, SiteRegistration
from streams.contracts.sessions import read_acn_sessions, site_registrations
from tests.unit.backtest.test_metrics import T0, H, reg, sess, sp


def _site(cls: str, export: float = 0.0, imp: float | None = None) -> SiteRegistration:
    return SiteRegistration(site_id="s", feeder_id="feeder-1", interconnection_class=cls,  # type: ignore[arg-type]
                            export_limit_kw=export, import_limit_kw=imp, registered_at=T0)


REGS = {c: reg(c, bidir=True, icls="parallel_exporting", export=5.0, enrolled=True) for c in ("a", "b")}
CARS = [sess("sa", "a"), sess("sb", "b")]


def test_two_chargers_each_within_their_limit_breach_the_site_limit() -> None:
    ok = [sp("a", 1, -2.5, 0, H), sp("b", 1, -2.5, 0, H)]
    assert audit_sites(ok, REGS, {"s": _site("parallel_exporting", 5.0)}, CARS, schedule_ms=4 * H) == []
    bad = [sp("a", 1, -5.0, 0, H), sp("b", 1, -5.0, 0, H)]
    out = audit_sites(bad, REGS, {"s": _site("parallel_exporting", 5.0)}, CARS, schedule_ms=4 * H)
    assert [v.rule for v in out] == ["site_export"] and out[0].charger_id == "s"


def test_a_schedule_point_after_expiry_is_audited_and_the_strictest_class_applies() -> None:
    late = [sp("a", 1, 0.0, 0, H // 2, schedule=[(H // 2, -3.0)])]
    assert audit_sites(late, REGS, {}, CARS, schedule_ms=4 * H) == []  # 3 kW within the chargers' 5 kW
    out = audit_sites(late, REGS, {"s": _site("parallel_non_exporting")}, CARS, schedule_ms=4 * H)
    assert [(v.rule, v.at_ms) for v in out] == [("site_export", T0 + H // 2)]


def test_behind_the_meter_discharge_is_credited_only_while_the_site_meter_is_fresh() -> None:
    regs = {"a": reg("a", bidir=True, icls="parallel_non_exporting", enrolled=True)}
    cars = [sess("sa", "a", dep=2 * H)]
    meter = [MeterReading(meter_id="m", feeder_id="feeder-1", site_id="s", timestamp=T0, active_power_kw=3.0)]
    sps = [sp("a", 1, -2.0, 0, 2 * H)]
    out = audit_sites(sps, regs, {}, cars, meter, schedule_ms=4 * H, meter_stale_ms=H)
    assert [(v.rule, v.at_ms) for v in out] == [("site_export", T0 + H + 1)]  # the reading went stale


def test_import_above_the_panel_limit_is_a_breach() -> None:
    out = audit_sites([sp("a", 1, 6.0, 0, H), sp("b", 1, 6.0, 0, H)], REGS,
                      {"s": _site("parallel_exporting", 5.0, imp=10.0)}, CARS, schedule_ms=4 * H)
    assert [v.rule for v in out] == ["site_import"]


def test_sessions_csv_site_columns(tmp_path) -> None:
    head = ("session_id,station_id,arrival_utc,departure_utc,requested_energy_kwh,max_power_kw,bidirectional,"
            "interconnection_class,site_id,site_export_limit_kw,site_import_limit_kw\n")
    rows = ["s1,A1,2019-03-05T08:00:00Z,2019-03-05T10:00:00Z,5,7,true,parallel_exporting,H,5,20",
            "s2,A2,2019-03-05T08:00:00Z,2019-03-05T10:00:00Z,5,7,true,parallel_exporting,H,4,",
            "s3,B1,2019-03-05T08:00:00Z,2019-03-05T10:00:00Z,5,7,false,,G,,"]
    p = tmp_path / "s.csv"
    p.write_text(head + "\n".join(rows) + "\n")
    sites = {s.site_id: s for s in site_registrations(read_acn_sessions(p), T0)}
    assert (sites["H"].interconnection_class, sites["H"].export_limit_kw, sites["H"].import_limit_kw) == (
        "parallel_exporting", 4.0, 20.0)
    assert sites["G"].interconnection_class == "non_parallel" and sites["G"].export_limit_kw == 0.0
    p.write_text(head + rows[0] + "\n" + rows[1].replace("parallel_exporting", "non_parallel") + "\n")
    with pytest.raises(ValueError, match="site H: its rows disagree on the interconnection class"):
        read_acn_sessions(p)


def test_the_audit_shares_no_code_with_the_envelope() -> None:
    """Safety is checked by a checker that shares no code with the envelope: importing the backtest audit loads
    neither streams.dispatch.safety nor streams.dispatch.site_rules (nor anything that imports them)."""
    import subprocess
    import sys

    code = ("import sys, streams.backtest.metrics; "
            "print(sorted(m for m in sys.modules if m in ('streams.dispatch.safety', 'streams.dispatch.site_rules')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
