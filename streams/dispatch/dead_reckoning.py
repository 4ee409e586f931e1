"""Dead reckoning: a charger's session energy estimated from the setpoints sent since its last report, when
its telemetry omits it (many chargers and replays of session logs do).

A part of :class:`~streams.dispatch.dispatcher.FeederDispatcher` (a mixin over its state).
"""

from __future__ import annotations

from streams.contracts.models import ChargerTelemetry
from streams.dispatch.inputs import DispatchInputs
from streams.dispatch.state import SessionState

__all__ = ["DeadReckoning"]


class DeadReckoning(DispatchInputs):
    """Telemetry completed by dead reckoning before the dispatcher takes it."""

    power_log: dict[str, list[tuple[int, float]]]

    def on_reported_telemetry(self, tel: ChargerTelemetry) -> bool:
        """``on_telemetry`` of a charger's report, its delivered energy dead-reckoned when it omits it; whether
        the report plugs a car in or out (a re-plan is due)."""
        before = self.sessions.get(tel.charger_id)
        was_connected = before is not None and before.connected
        self.on_telemetry(self._with_energy(tel, before))
        return tel.connected != was_connected

    def session(self, charger_id: str) -> SessionState | None:
        """The charger's session as last reported (``None`` if never heard)."""
        return self.sessions.get(charger_id)

    def _with_energy(self, tel: ChargerTelemetry, before: SessionState | None) -> ChargerTelemetry:
        """Telemetry with ``energy_delivered_kwh`` estimated from the setpoints sent, when the charger omits it.

        Many chargers (and replays of session logs) report no session energy; planning as if nothing had been
        delivered would re-plan the full request every step. Dead reckoning: the setpoints in force since the
        last report, integrated over time, capped by the request.
        """
        log = self.power_log.pop(tel.charger_id, [])
        if tel.energy_delivered_kwh is not None or not tel.connected:
            return tel
        if before is None or not before.connected or before.session_id != tel.session_id:
            return tel  # a new session: nothing delivered yet
        energy = before.energy_delivered_kwh or 0.0
        for i, (start, kw) in enumerate(log):
            end = log[i + 1][0] if i + 1 < len(log) else tel.timestamp
            lo, hi = max(start, before.last_heard_ms), min(end, tel.timestamp)
            if hi > lo:
                energy += kw * (hi - lo) / 3_600_000
        if log:
            self.power_log[tel.charger_id] = [(tel.timestamp, log[-1][1])]
        if tel.requested_energy_kwh is not None:
            energy = min(energy, tel.requested_energy_kwh)
        return tel.model_copy(update={"energy_delivered_kwh": energy})  # net: V2G discharge is given back
