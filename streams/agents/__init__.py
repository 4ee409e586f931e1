"""faust agents: thin adapters wiring Kafka topics to the pure pipeline."""

__all__: list[str] = []
