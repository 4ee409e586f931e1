"""The backtest page people read: words and labels instead of raw keys, UTC time axes, plots that render offline.

The browser test opens the page in headless Chromium (Debian's package) with the network off and checks that
plotly drew every plot (its SVG layers and line paths exist in the DOM after the scripts ran), then takes a
screenshot (``make report-screenshot`` keeps one to look at).
"""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from streams.backtest.inprocess import run_in_process
from streams.backtest.inputs import from_flags
from streams.backtest.report import compute_report
from streams.backtest.report_html import LABELS
from streams.backtest.report_html import render_page as render_html
from streams.contracts.topics import SETPOINTS
from streams.settings import Settings

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("report") / "s.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session_id", "station_id", "arrival_utc", "departure_utc", "requested_energy_kwh",
                    "max_power_kw", "bidirectional", "initial_soc_pct", "capacity_kwh"])
        for i in range(6):
            w.writerow([f"s{i}", f"CA-{i}", f"2019-03-04T{8 + i:02d}:00:00Z", f"2019-03-04T{15 + i:02d}:00:00Z",
                        15.0 + i, 7.0, "true" if i % 2 else "false", 40, 60])
    inputs = from_flags(path, step_ms=300_000, import_limit_kw=25.0)
    settings = Settings(interval_minutes=5)
    sps = run_in_process(inputs, settings)[SETPOINTS]
    return render_html(compute_report(inputs, setpoints=sps, settings=settings, optimum=True))


def _visible(page: str) -> str:
    """The page without scripts, styles and the collapsed JSON block."""
    text = re.sub(r"<script.*?</script>|<style.*?</style>|<details>.*?</details>", "", page, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", text).split())


def test_headline_in_words_with_units_and_time_zone(page: str) -> None:
    text = _visible(page)
    assert "all times UTC" in text and "Peak import" in text and " kW with evgrid" in text
    assert "Drivers got" in text and "of the energy they asked for" in text and "Feeder limit 25 kW" in text
    assert re.search(r"\d+ % lower", text)


def test_tables_use_labels_not_raw_keys(page: str) -> None:
    text = _visible(page)
    for key, (label, _) in LABELS.items():
        if key in ("peak_kw", "energy_delivered_pct_of_deliverable", "v2g_exported_kwh", "safety_violations"):
            assert label in text
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", text.replace("--load", "")), re.findall(r"\b[a-z]+_[a-z_]+\b", text)
    assert "{" not in text  # no JSON blobs outside the collapsed block


def test_plots_are_inline_and_label_the_utc_axis(page: str) -> None:
    assert not re.findall(r"<script[^>]*\bsrc=", page) and not re.findall(r"<link[^>]*\bhref=", page)
    assert page.count("Plotly.newPlot") >= 3  # load, sessions, setpoints
    assert page.count('"Time (UTC)"') >= 3


@pytest.mark.slow
def test_page_renders_in_headless_chromium(page: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium (apt-get install -y chromium)")
    html_path = tmp_path / "report.html"
    html_path.write_text(page)
    args = [chromium, *CHROMIUM_FLAGS, "--virtual-time-budget=15000", "--window-size=1300,3000"]
    dom = subprocess.run([*args, "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=180,
                         check=False).stdout
    plots = page.count("Plotly.newPlot")
    assert dom.count('class="main-svg"') >= 2 * plots  # plotly drew each plot (two SVG layers each)
    assert dom.count('class="js-line"') >= plots  # with lines in them
    assert "Time (UTC)" in dom
    png = tmp_path / "report.png"
    subprocess.run([*args, f"--screenshot={png}", html_path.as_uri()], capture_output=True, timeout=180, check=False)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
