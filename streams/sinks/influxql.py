"""An InfluxQL query type for grafana-foundation-sdk, which ships no InfluxDB query model.

:class:`InfluxQLQuery` is a typed dataquery variant (registered with the SDK runtime under the datasource type
``influxdb``), so dashboards and alert rules that use it decode back into typed objects with
``Dashboard.from_json`` / ``Rule.from_json``. The query text is raw InfluxQL (``rawQuery``) with Grafana's
InfluxQL macros: ``$timeFilter``, ``$__interval``, ``$<variable>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = ["DATASOURCE", "DATASOURCE_UID", "InfluxQL", "InfluxQLQuery", "register"]

DATASOURCE_UID = "evgrid-influxdb"
"""UID of the provisioned InfluxDB datasource every panel and alert rule refers to."""
DATASOURCE = DataSourceRef(type_val="influxdb", uid=DATASOURCE_UID)

ResultFormat = Literal["time_series", "table"]


@dataclass
class InfluxQLQuery(cogvariants.Dataquery):
    """A raw InfluxQL target of a panel or an alert rule (Grafana's InfluxDB query model, InfluxQL mode)."""

    ref_id: str
    query: str
    alias: str | None = None
    result_format: ResultFormat = "time_series"
    hide: bool | None = None

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "datasource": DATASOURCE.to_json(),
            "query": self.query,
            "rawQuery": True,
            "refId": self.ref_id,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        return payload

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        if data.get("rawQuery") is not True:
            raise ValueError("only raw InfluxQL queries are supported")
        return cls(ref_id=data["refId"], query=data["query"], alias=data.get("alias"),
                   result_format=data.get("resultFormat", "time_series"), hide=data.get("hide"))


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of :class:`InfluxQLQuery` for ``Panel.with_target`` and ``alerting.Query.model``.

    Parameters
    ----------
    query : str
        Raw InfluxQL with Grafana macros.
    ref_id : str
        Query letter within the panel or rule.
    """

    def __init__(self, query: str, ref_id: str = "A") -> None:
        self._internal = InfluxQLQuery(ref_id=ref_id, query=query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def alias(self, alias: str) -> Self:
        """Series name pattern, e.g. ``$tag_horizon``."""
        self._internal.alias = alias
        return self

    def table(self) -> Self:
        """Return a table instead of time series."""
        self._internal.result_format = "table"
        return self


def register() -> None:
    """Register the SDK's default panel/query variants and :class:`InfluxQLQuery` (idempotent)."""
    register_default_plugins()
    cogruntime.register_dataquery_variant(cogruntime.DataqueryConfig(
        identifier="influxdb", from_json_hook=InfluxQLQuery.from_json))
