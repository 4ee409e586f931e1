"""Each gateway test runs at its own wall-clock ``NOW`` (the gateway checks setpoints against the wall clock)."""

from __future__ import annotations

import time

import pytest

from tests.unit.ocpp_gateway import test_gateway_ws


@pytest.fixture(autouse=True)
def _now(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    now = int(time.time() * 1000)
    monkeypatch.setattr(test_gateway_ws, "NOW", now)  # read by its builders (setpoint, reg)
    if hasattr(request.module, "NOW"):
        monkeypatch.setattr(request.module, "NOW", now)  # a module that imported it
