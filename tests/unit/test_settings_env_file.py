"""Settings files are explicit (EVGRID_ENV_FILE) and owner-only; a .env in the working directory is ignored."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("EVGRID_ENV_FILE", "EVGRID_APP_ID", "EVGRID_SASL_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


def _write(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_dotenv_in_working_directory_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path / ".env", "EVGRID_APP_ID=from-dotenv\n", 0o600)
    monkeypatch.chdir(tmp_path)
    assert Settings().app_id == "evgrid"


def test_named_owner_only_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = _write(tmp_path / "worker.env", "EVGRID_APP_ID=from-file\nEVGRID_SASL_PASSWORD=pw-123\n", 0o600)
    monkeypatch.setenv("EVGRID_ENV_FILE", str(env))
    s = Settings()
    assert s.app_id == "from-file" and s.sasl_password is not None
    assert s.sasl_password.get_secret_value() == "pw-123"
    monkeypatch.setenv("EVGRID_APP_ID", "from-environment")  # the environment still wins
    assert Settings().app_id == "from-environment"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_file_readable_by_others_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: int) -> None:
    env = _write(tmp_path / "worker.env", "EVGRID_SASL_PASSWORD=pw\n", mode)
    monkeypatch.setenv("EVGRID_ENV_FILE", str(env))
    with pytest.raises(ValueError, match=r"readable by group or others.*chmod 600"):
        Settings()


def test_missing_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVGRID_ENV_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(ValueError, match=r"nope\.env"):
        Settings()


def test_config_show_says_it_in_one_line_and_exits_2(tmp_path: Path) -> None:
    env = _write(tmp_path / "worker.env", "EVGRID_SASL_PASSWORD=pw-secret\n", 0o644)
    proc = subprocess.run([sys.executable, "-c", "from streams.cli import app; app()", "config", "show"],
                          env={**os.environ, "EVGRID_ENV_FILE": str(env)}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "chmod 600" in lines[0] and "pw-secret" not in proc.stderr
