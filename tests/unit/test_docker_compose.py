"""infra/docker-compose.yml cannot run here (no Docker): check it parses and every host path it mounts exists."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "infra" / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    if not COMPOSE.exists():
        pytest.skip("infra/docker-compose.yml is not in the repository yet")
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict) and isinstance(doc.get("services"), dict), "compose file has no services"
    return doc


def _host_mounts(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, host path, container path) of every bind mount (named volumes are skipped)."""
    named = set(doc.get("volumes") or {})
    out = []
    for name, service in doc["services"].items():
        for vol in service.get("volumes", []):
            if isinstance(vol, dict):  # long syntax
                if vol.get("type", "volume") != "bind":
                    continue
                source, target = vol["source"], vol["target"]
            else:
                source, _, rest = vol.partition(":")
                target = rest.split(":")[0]
                if source in named or not (source.startswith((".", "/", "~"))):
                    continue
            out.append((name, source, target))
    return out


def test_compose_has_kafka_influxdb_and_grafana(compose: dict[str, Any]) -> None:
    assert {"kafka", "influxdb", "grafana"} <= set(compose["services"])


def test_every_bind_mounted_host_path_exists(compose: dict[str, Any]) -> None:
    mounts = _host_mounts(compose)
    assert mounts, "no bind mounts: Grafana's provisioning is not mounted"
    for service, source, _ in mounts:
        path = (COMPOSE.parent / Path(source).expanduser()).resolve()
        assert path.exists(), f"{service} mounts {source}, which does not exist ({path})"


def test_grafana_mounts_the_generated_provisioning_and_dashboards(compose: dict[str, Any]) -> None:
    mounts = {target: (COMPOSE.parent / source).resolve()
              for service, source, target in _host_mounts(compose) if service == "grafana"}
    assert mounts.get("/etc/grafana/provisioning") == REPO / "grafana" / "provisioning"
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/evgrid.yaml").read_text(encoding="utf-8"))
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert mounts.get(dashboards_path) == REPO / "grafana" / "dashboards"
    assert any((REPO / "grafana" / "dashboards").glob("*.json"))
    datasource = yaml.safe_load((REPO / "grafana/provisioning/datasources/influxdb.yaml").read_text(encoding="utf-8"))
    url = datasource["datasources"][0]["url"]
    assert url == "http://influxdb:8086" and "influxdb" in compose["services"]
