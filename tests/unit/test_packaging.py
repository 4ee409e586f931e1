"""The schemas travel with the package: sdist → wheel → a fresh venv runs ``evgrid --version`` and decodes a setpoint.

The venv sees the system's dependencies (``--system-site-packages``) but gets evgrid only from the wheel, and
runs outside the repository, so the repository's ``schemas/`` folder cannot be what it reads.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from streams.contracts.codec import default_codec
from streams.contracts.models import ChargerSetpoint, SchedulePoint, encode_record

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "streams", "schemas")

DECODE = """
import sys
from pathlib import Path
import streams
from streams.contracts.codec import default_codec
from streams.contracts.models import decode_record
codec = default_codec()
sp = decode_record(codec, Path(sys.argv[1]).read_bytes(), "ChargerSetpoint")
print(Path(streams.__file__).parent, codec.schema_dir, sp.charger_id, sp.setpoint_kw, sp.schedule[0].kw)
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, (cmd, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.mark.slow
def test_wheel_from_sdist_carries_the_schemas(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(p, src / name)
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "sdist")], src)
    (sdist,) = (tmp_path / "sdist").glob("evgrid-*.tar.gz")
    with tarfile.open(sdist) as tar:
        in_sdist = {Path(n).name for n in tar.getnames() if n.endswith(".avsc")}
    expected = {p.name for p in (REPO / "schemas").rglob("*.avsc")}
    assert in_sdist == expected

    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(tmp_path / "wheel"), str(sdist)], tmp_path)
    (wheel,) = (tmp_path / "wheel").glob("evgrid-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        in_wheel = {n for n in zf.namelist() if n.endswith(".avsc")}
    assert {Path(n).name for n in in_wheel} == expected
    assert all(n.startswith("streams/schemas/") for n in in_wheel)

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", str(wheel)], tmp_path)

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "EVGRID_SCHEMA_DIR")}
    version = _run([str(venv / "bin" / "evgrid"), "--version"], tmp_path, env)
    assert version.strip() == "evgrid 0.1.0"

    sp = ChargerSetpoint(charger_id="CA-1", feeder_id="f1", session_id="s1", sequence=3, setpoint_kw=-4.5,
                         valid_from=1_700_000_000_000, valid_until=1_700_000_300_000, fallback_kw=1.4,
                         schedule=[SchedulePoint(start=1_700_000_300_000, kw=2.0)],
                         reason="optimal", plan_id="p1", issued_at=1_700_000_000_000)
    blob = tmp_path / "setpoint.bin"
    blob.write_bytes(encode_record(default_codec(), sp))  # written by the source checkout
    (tmp_path / "decode.py").write_text(DECODE)
    pkg, schema_dir, charger, kw, first = _run([str(py), "decode.py", str(blob)], tmp_path, env).split()
    assert Path(pkg).is_relative_to(venv) and Path(schema_dir).is_relative_to(venv), (pkg, schema_dir)
    assert (charger, float(kw), float(first)) == ("CA-1", -4.5, 2.0)
