"""evgrid configuration: one frozen pydantic-settings class.

Every field is read from an environment variable ``EVGRID_<FIELD NAME IN UPPER CASE>``, or from the
``.env``-style file named by ``EVGRID_ENV_FILE`` (never implicitly from the working directory; the file must
be owner-only). ``evgrid config show`` prints the effective values with secrets redacted.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from streams.dispatch.dispatcher import DispatchConfig
    from streams.forecasting.forecaster import ForecasterConfig
    from streams.pipeline.config import FeederConfig, PipelineConfig

__all__ = ["ENV_FILE_VAR", "Settings", "dispatch_config", "env_file", "feeder_config", "forecaster_config",
           "get_settings", "pipeline_config"]

ENV_FILE_VAR = "EVGRID_ENV_FILE"


def env_file() -> str | None:
    """The settings file named by ``EVGRID_ENV_FILE`` (None when unset).

    Raises ValueError when it is missing or readable by group or others (it may hold secrets)."""
    path = os.environ.get(ENV_FILE_VAR)
    if not path:
        return None
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError as exc:
        raise ValueError(f"{ENV_FILE_VAR}={path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ValueError(f"{ENV_FILE_VAR}={path} is readable by group or others (mode {mode:o}); chmod 600 it")
    return path


class Settings(BaseSettings):
    """Settings of every evgrid process. The environment variable of each field is named in its doc."""

    model_config = SettingsConfigDict(
        env_prefix="EVGRID_", env_file=None, extra="ignore", frozen=True, use_attribute_docstrings=True
    )

    def __init__(self, **values: Any) -> None:
        if "_env_file" not in values:
            values["_env_file"] = env_file()
        super().__init__(**values)

    # --- Kafka ---------------------------------------------------------------------------------
    bootstrap_servers: str = "127.0.0.1:9092"
    """EVGRID_BOOTSTRAP_SERVERS: Kafka bootstrap servers, comma-separated host:port."""
    topic_prefix: str = ""
    """EVGRID_TOPIC_PREFIX: prefix for every topic name, e.g. ``replay1.`` so a replay never mixes with live traffic."""
    app_id: str = "evgrid"
    """EVGRID_APP_ID: faust application id (consumer group and changelog topic prefix)."""
    partitions: int = 4
    """EVGRID_PARTITIONS: partitions of the feeder-keyed topics created by ``evgrid topics create``."""
    replication_factor: int = 1
    """EVGRID_REPLICATION_FACTOR: replication factor of created topics (1 on a single local broker)."""
    security_protocol: str = "PLAINTEXT"
    """EVGRID_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
    sasl_mechanism: str = "SCRAM-SHA-512"
    """EVGRID_SASL_MECHANISM: SASL mechanism when security_protocol is SASL_*."""
    sasl_username: str | None = None
    """EVGRID_SASL_USERNAME: SASL user name."""
    sasl_password: SecretStr | None = None
    """EVGRID_SASL_PASSWORD: SASL password (never logged)."""
    ssl_cafile: str | None = None
    """EVGRID_SSL_CAFILE: CA certificate (PEM) that signed the broker certificates."""
    ssl_certfile: str | None = None
    """EVGRID_SSL_CERTFILE: client certificate (PEM) for mTLS."""
    ssl_keyfile: str | None = None
    """EVGRID_SSL_KEYFILE: client private key (PEM) for mTLS."""
    topic_retention_ms: int | None = None
    """EVGRID_TOPIC_RETENTION_MS: override the retention of every topic created (-1 = keep forever). Kafka ages
    records by their timestamp (= event time), so replays of history need -1 or they are deleted at once."""
    table_standby_replicas: int = 0
    """EVGRID_TABLE_STANDBY_REPLICAS: workers that keep a warm copy of each feeder-state partition (faster failover)."""
    store: str = "memory://"
    """EVGRID_STORE: faust table store, ``memory://`` or ``rocksdb://``."""
    data_dir: str = ".run/worker"
    """EVGRID_DATA_DIR: worker data directory (RocksDB tables, faust metadata)."""
    max_message_bytes: int = 1_048_576
    """EVGRID_MAX_MESSAGE_BYTES: input messages larger than this go to the dead-letter topic as ``oversized``."""
    checkpoint_max_bytes: int = 16 * 1_048_576
    """EVGRID_CHECKPOINT_MAX_BYTES: the largest feeder checkpoint a worker writes (the state changelog topic's
    ``max.message.bytes`` and the producer's largest request). A feeder that has heard no charger yet keeps
    ``max_telemetry_lag_hours`` of forecasts, each over the whole horizon: at 5-minute intervals a day of them is
    about 1.1 MB compressed, above a broker's 1 MB default. A changelog topic created before this setting keeps
    its own ``max.message.bytes``: raise it with ``kafka-configs.sh --alter``."""
    checkpoint_seconds: float = 5.0
    """EVGRID_CHECKPOINT_SECONDS: a worker writes the feeder states of each input partition changed since its last
    checkpoint to the changelog this often (worker clock; the partitions take turns, so the work is spread over the
    period), and all before partitions move; input offsets are committed only up to what a checkpoint covers, so
    this bounds the input re-read after a crash. Each checkpoint pickles a whole feeder (~5 ms and ~200 kB for 100
    chargers), so at 100 busy feeders per worker 1 s would take half the worker's time."""
    intake_max_meter_records: int = 40_000
    """EVGRID_INTAKE_MAX_METER_RECORDS: a worker applies charger telemetry, registrations, grid signals and incentive
    responses ahead of the meter readings fetched with them (so a plug-in, or the plan at an interval end, does
    not wait behind the readings every meter sends at that end), keeping fetching while fewer than this many
    readings wait. Bounds the memory of readings waiting, and how far telemetry can be read ahead of them."""
    failpoint: str = ""
    """EVGRID_FAILPOINT: testing only: ``NAME[:N]`` stops the worker the N-th time it reaches the named point
    (``emit``, ``delivery``, ``acked``; see :mod:`streams.agents.failpoints`) so a test can kill it there."""
    max_held_telemetry: int = 20_000
    """EVGRID_MAX_HELD_TELEMETRY: charger telemetry a worker holds in memory while its feeders' meter streams catch up
    (a replay read at full speed, a backlog); at this many the worker stops fetching control topics and reads
    meters only. Held telemetry is never checkpointed: its offsets are, and it is read again after a restart."""
    gc_gen0_threshold: int = 100_000
    """EVGRID_GC_GEN0_THRESHOLD: a worker freezes the objects it starts with out of garbage collection and runs the
    young-generation collector after this many allocations (Python's default, 700, costs a quarter of the ingest
    throughput: the pipeline allocates a few short-lived objects per record); 0 keeps Python's defaults."""

    # --- Event time ------------------------------------------------------------------------------
    interval_minutes: int = 15
    """EVGRID_INTERVAL_MINUTES: aggregation and planning interval, minutes (1-60)."""
    grace_seconds: int = 300
    """EVGRID_GRACE_SECONDS: how late (event time) a reading may arrive and still count in its interval."""
    max_future_seconds: int = 3600
    """EVGRID_MAX_FUTURE_SECONDS: readings more than this ahead of the feeder's watermark are rejected."""
    ordered_dead_letters: bool = False
    """EVGRID_ORDERED_DEAD_LETTERS: a worker sends a dead letter only once every output before it is written (a
    broker round trip each): whoever sees the dead letter finds those outputs in their topics. The broker closed
    loop's lockstep markers need it (``evgrid backtest`` sets it for its worker)."""
    align_idle_seconds: int = 30
    """EVGRID_ALIGN_IDLE_SECONDS: telemetry waits for the meter readings that cover its time, and for the registration
    of a charger not yet known. The wait ends without them only when that partition of the meter (registry) topic
    has been read to its end and stayed so for this many seconds (a stream that stopped, not a producer's pause),
    and the feeder's telemetry is two intervals plus the grace (this many seconds) past the record, in event time.
    Replayed input that is all there never meets that: the same inputs give the same decisions."""
    max_telemetry_lag_hours: int = 24
    """EVGRID_MAX_TELEMETRY_LAG_HOURS: a feeder keeps the meter history (forecasts, loads, site readings) that a plan
    this far behind its newest meter reading may use; older history goes to the dispatcher (billing peak,
    yesterday's load) or is dropped, so its checkpoint does not grow with time while its meters are read ahead of
    its telemetry (no charger heard yet, or telemetry held). Telemetry read more than this far behind its feeder's
    meters plans with newer history."""
    max_plan_lag_seconds: int = 0
    """EVGRID_MAX_PLAN_LAG_SECONDS: live mode: when catching up a backlog, plans for intervals that ended more than
    this long ago (worker clock) are skipped and counted; 0 = off (replays and backtests)."""
    max_past_days: int = 400
    """EVGRID_MAX_PAST_DAYS: readings more than this behind the feeder's watermark are rejected."""

    # --- Forecasting -----------------------------------------------------------------------------
    horizon_hours: int = 24
    """EVGRID_HORIZON_HOURS: forecast and planning horizon, hours."""
    forecast_model: str = "default"
    """EVGRID_FORECAST_MODEL: forecasting model family (see ``evgrid forecast-eval``)."""
    forecast_coverage: float = 0.9
    """EVGRID_FORECAST_COVERAGE: nominal coverage of prediction intervals (fraction)."""
    holiday_country: str = "US"
    """EVGRID_HOLIDAY_COUNTRY: ISO country code of the holiday calendar used as a forecast feature."""
    local_timezone: str = "UTC"
    """EVGRID_LOCAL_TIMEZONE: IANA time zone for calendar features (time of day, weekday, holidays)."""

    # --- Dispatch --------------------------------------------------------------------------------
    reserve_soc_pct: float = 30.0
    """EVGRID_RESERVE_SOC_PCT: default minimum SoC for discharging, percent."""
    stale_telemetry_seconds: int = 900
    """EVGRID_STALE_TELEMETRY_SECONDS: a charger not heard for this long gets the safe fallback setpoint."""
    fallback_kw: float = 0.0
    """EVGRID_FALLBACK_KW: power a charger applies when its setpoint has expired, kW (>= 0)."""
    default_import_limit_kw: float = 1_000_000.0
    """EVGRID_DEFAULT_IMPORT_LIMIT_KW: feeder import limit when no GridSignal gives one, kW."""
    default_export_limit_kw: float = 0.0
    """EVGRID_DEFAULT_EXPORT_LIMIT_KW: feeder reverse-flow limit when no GridSignal gives one, kW."""
    default_price_per_kwh: float = 0.20
    """EVGRID_DEFAULT_PRICE_PER_KWH: energy price when no GridSignal gives one, currency/kWh."""
    cycling_cost_per_kwh: float = 0.05
    """EVGRID_CYCLING_COST_PER_KWH: battery wear penalty per discharged kWh, currency/kWh."""
    solver_iteration_limit: int = 50_000
    """EVGRID_SOLVER_ITERATION_LIMIT: HiGHS simplex iterations per plan (the deterministic budget: same inputs, same
    plan at any CPU load); over it the least-laxity-first heuristic plans. Real plans need < 1,000."""
    solver_time_limit_s: float = 60.0
    """EVGRID_SOLVER_TIME_LIMIT_S: wall-clock hang guard per HiGHS solve, s; its firing is logged (the plan then
    depends on the machine's load). Keep it well above any real solve."""
    currency: str = "USD"
    """EVGRID_CURRENCY: ISO 4217 currency of prices and incentives."""

    # --- Monitoring ------------------------------------------------------------------------------
    influx_url: str = "http://127.0.0.1:8086"
    """EVGRID_INFLUX_URL: InfluxDB URL (1.8 with /api/v2, 2.x or 3.x)."""
    influx_token: SecretStr = SecretStr("")
    """EVGRID_INFLUX_TOKEN: InfluxDB token (``user:password`` for 1.8; never logged)."""
    influx_org: str = "evgrid"
    """EVGRID_INFLUX_ORG: InfluxDB organisation (ignored by 1.8)."""
    influx_bucket: str = "evgrid/autogen"
    """EVGRID_INFLUX_BUCKET: InfluxDB bucket; ``database/retention-policy`` on 1.8."""
    influx_buffer_points: int = 100_000
    """EVGRID_INFLUX_BUFFER_POINTS: most points buffered while InfluxDB is unreachable; the oldest are dropped."""
    influx_flush_seconds: float = 1.0
    """EVGRID_INFLUX_FLUSH_SECONDS: how often the monitoring sink writes a batch."""

    # --- Record and replay -------------------------------------------------------------------------
    replay_batch_records: int = 5_000
    """EVGRID_REPLAY_BATCH_RECORDS: records queued between producer polls and progress updates in ``evgrid replay``."""
    replay_linger_ms: int = 25
    """EVGRID_REPLAY_LINGER_MS: producer linger during ``evgrid replay``, ms (bigger batches, more throughput)."""
    record_commit_records: int = 200_000
    """EVGRID_RECORD_COMMIT_RECORDS: ``evgrid record`` commits a chunk (files + offsets) after this many records."""
    record_commit_seconds: float = 5.0
    """EVGRID_RECORD_COMMIT_SECONDS: ``evgrid record`` commits at least this often while records arrive, s."""

    # --- Simulator and producer (streams/simulate, streams/kafka/clients.py) --------------------------------
    sim_acn_sessions_path: str = ""
    """EVGRID_SIM_ACN_SESSIONS_PATH: ACN-Data sessions CSV the simulator resamples; empty = the bundled copy."""
    sim_latitude: float = 38.7
    """EVGRID_SIM_LATITUDE: latitude of the simulated area, degrees north (sun, PV, weather); keep it
    consistent with EVGRID_LOCAL_TIMEZONE (the default, Lisbon, is solar-consistent with UTC)."""
    sim_longitude: float = -9.1
    """EVGRID_SIM_LONGITUDE: longitude of the simulated area, degrees east."""
    producer_linger_ms: int = 20
    """EVGRID_PRODUCER_LINGER_MS: producer linger (batching delay), ms."""
    producer_batch_bytes: int = 1_048_576
    """EVGRID_PRODUCER_BATCH_BYTES: producer batch size, bytes."""
    producer_compression: str = "lz4"
    """EVGRID_PRODUCER_COMPRESSION: producer compression codec (none, gzip, snappy, lz4, zstd)."""

    # --- Monitoring sink and dashboards (streams/sinks) -----------------------------------------------
    influx_batch_points: int = 5_000
    """EVGRID_INFLUX_BATCH_POINTS: most points the monitoring sink sends in one write."""
    influx_timeout_ms: int = 5_000
    """EVGRID_INFLUX_TIMEOUT_MS: HTTP timeout of one InfluxDB write, ms."""
    influx_retry_max_seconds: float = 10.0
    """EVGRID_INFLUX_RETRY_MAX_SECONDS: longest backoff between retries while InfluxDB is failing, seconds."""
    influx_stats_seconds: float = 10.0
    """EVGRID_INFLUX_STATS_SECONDS: how often the sink writes its own counters (measurement ``sink``)."""
    metrics_horizons_minutes: tuple[int, ...] = (15, 60, 240, 1440)
    """EVGRID_METRICS_HORIZONS_MINUTES: forecast horizons written and scored, minutes (JSON list, e.g. [15,60])."""
    metrics_naive_season_hours: int = 24
    """EVGRID_METRICS_NAIVE_SEASON_HOURS: season of the seasonal-naive baseline forecast errors compare to, hours."""

    # --- Forecasting model (issue 3) -------------------------------------------------------------
    forecast_forgetting: float = 0.999
    """EVGRID_FORECAST_FORGETTING: weight the past keeps per closed interval in the ``river-blr`` and ``fls`` models."""
    forecast_warmup_days: float = 14.0
    """EVGRID_FORECAST_WARMUP_DAYS: days before a feeder's running forecast accuracy starts counting."""
    forecast_min_learn_share: float = 0.5
    """EVGRID_FORECAST_MIN_LEARN_SHARE: intervals where a smaller share of meters reported are not learned from."""

    # --- Dispatch planner and setpoints (issue 4) --------------------------------------------------
    dispatch_fine_horizon_minutes: int = 120
    """EVGRID_DISPATCH_FINE_HORIZON_MINUTES: first part of the horizon planned at the interval resolution."""
    dispatch_coarse_step_minutes: int = 30
    """EVGRID_DISPATCH_COARSE_STEP_MINUTES: step of the rest of the horizon, minutes (0 = uniform grid)."""
    dispatch_replan_minutes: int = 15
    """EVGRID_DISPATCH_REPLAN_MINUTES: re-plan at least this often even when nothing changed, minutes."""
    dispatch_forecast_arrivals: bool = True
    """EVGRID_DISPATCH_FORECAST_ARRIVALS: plan for the forecast demand of sessions still to arrive."""
    dispatch_ramp_hold: bool = True
    """EVGRID_DISPATCH_RAMP_HOLD: a plan counts on a rising feeder load going on rising at its last slope (30 min)."""
    dispatch_base_period_max: bool = True
    """EVGRID_DISPATCH_BASE_PERIOD_MAX: within each feeder meter reading period, a plan takes the load forecast's
    largest interval."""
    dispatch_flatten_per_kwh: float = 0.05
    """EVGRID_DISPATCH_FLATTEN_PER_KWH: under the peak, the cost per kWh of net load in the top of ``flatten_levels``
    bands (lower bands cost less): EV load goes to the base load's valleys (0 = off; figures in docs/backtest.md)."""
    dispatch_charge_taper_soc_pct: float = 80.0
    """EVGRID_DISPATCH_CHARGE_TAPER_SOC_PCT: plans taper a car's charging above this SoC (%, linearly to a tenth of its
    rating when full; 0 = no taper planned)."""
    dispatch_flatten_levels: int = 64
    """EVGRID_DISPATCH_FLATTEN_LEVELS: bands of the flattening cost between the horizon's lowest base load and the
    peak. Within a band the LP is indifferent where EV load goes, so a wide band lets successive plans jump by its
    width (8 bands: about 20 kW on the V2G week, which set its peak)."""
    dispatch_early_per_kwh_hour: float = 1e-4
    """EVGRID_DISPATCH_EARLY_PER_KWH_HOUR: a plan's cost per kWh and hour of charging a car later (scaled by 24 h
    over the car's remaining stay): the earlier it leaves, the sooner it charges."""
    dispatch_near_peak_per_kw: float = 50.0
    """EVGRID_DISPATCH_NEAR_PEAK_PER_KW: a plan's cost per kW of its peak over the next
    ``dispatch_near_peak_minutes`` above the month's running peak, at the steps whose base load alone is above it,
    besides the horizon's peak: a higher peak forecast later (a rising load carried on, which may not come) does not
    make load above the running peak free now."""
    dispatch_near_peak_minutes: float = 30.0
    """EVGRID_DISPATCH_NEAR_PEAK_MINUTES: the window of ``dispatch_near_peak_per_kw``."""
    dispatch_near_peak_upper_minutes: float = 15.0
    """EVGRID_DISPATCH_NEAR_PEAK_UPPER_MINUTES: for this long ahead the near-term peak holds against the base-load
    forecast's upper prediction bound (``forecast_coverage``), not its point forecast (0: never). A meter reads a
    spiky load's period only once it is over; a jump the point forecast misses is shaved (V2G discharge, charging held
    back) a period late, or not at all. The horizon's peak keeps the point forecast, so a high bound near now does not
    lift what later steps may fill. Residential week 164.98 -> 151.11 kW, V2G week unchanged (docs/backtest.md)."""
    dispatch_upper_peak_per_kw: float = 10.0
    """EVGRID_DISPATCH_UPPER_PEAK_PER_KW: a plan's cost per kW of its peak against the base-load forecast's upper
    prediction bound (``forecast_coverage``) over the horizon, besides its peak against the point forecast (0: off).
    Where the month's running peak already covers the point forecast, V2G energy and charging otherwise go anywhere
    under it; this keeps the energy for, and the charging away from, the hours where the load may come out high."""
    dispatch_scenario_share: float = 0.25
    """EVGRID_DISPATCH_SCENARIO_SHARE: the weight (0..1) of a second base-load scenario in every plan: the load as far
    under the point forecast as the forecast's upper prediction bound is over it. One LP plans both, each with its
    own future and peak, and every car's first step (the setpoint sent now) is the same in both: a plan does not load
    the running peak now on the word of a forecast peak later that may not come (0: the point forecast alone). One
    solve takes 2.5-3 times as long; the bundled backtests' wall about a fifth more. V2G week (with the twins'
    heartbeat phase and the hold under the bound) 201.457 -> 200.672 kW (docs/backtest.md)."""
    setpoint_change_threshold_kw: float = 0.1
    """EVGRID_SETPOINT_CHANGE_THRESHOLD_KW: emit a new setpoint when the power moves by at least this, kW."""
    setpoint_refresh_seconds: int = 900
    """EVGRID_SETPOINT_REFRESH_SECONDS: re-emit an unchanged setpoint of a plugged-in charger this often."""
    setpoint_validity_seconds: int = 1800
    """EVGRID_SETPOINT_VALIDITY_SECONDS: valid_until - valid_from of a setpoint (> refresh)."""
    setpoint_schedule_hours: float = 4.0
    """EVGRID_SETPOINT_SCHEDULE_HOURS: length of the planned schedule carried by each setpoint, hours."""
    setpoint_lag_seconds: int = 60
    """EVGRID_SETPOINT_LAG_SECONDS: how long after its step starts a setpoint is expected to reach the charger (a plan
    at a step boundary waits for the first telemetry after it: about one heartbeat). A plan counts each car's last step
    before departure this much shorter, so a late last rise of power cannot leave it short."""
    incentive_delay_price_per_kwh: float = 0.10
    """EVGRID_INCENTIVE_DELAY_PRICE_PER_KWH: compensation per kWh of charging delayed out of a window."""
    incentive_export_price_per_kwh: float = 0.30
    """EVGRID_INCENTIVE_EXPORT_PRICE_PER_KWH: compensation per kWh exported in an offered window."""

    # --- Pipeline monitoring (streams/agents/monitor.py) --------------------------------------------
    monitor_enabled: bool = True
    """EVGRID_MONITOR_ENABLED: workers write per-worker pipeline metrics (throughput, lag, dead letters, latency)."""
    monitor_pipeline_seconds: float = 10.0
    """EVGRID_MONITOR_PIPELINE_SECONDS: how often a worker writes its pipeline metrics, seconds."""
    monitor_offset_reset: str = "earliest"
    """EVGRID_MONITOR_OFFSET_RESET: where a new ``evgrid monitor`` consumer group starts, earliest or latest."""

    # --- Dispatch: sites, storage, VPP (issue 8) -----------------------------------------------------
    dispatch_site_demand_charge_per_kw: float = 0.0
    """EVGRID_DISPATCH_SITE_DEMAND_CHARGE_PER_KW: default demand charge of every site per kW of monthly peak."""
    dispatch_site_peak_margin: float = 0.0
    """EVGRID_DISPATCH_SITE_PEAK_MARGIN: a site's demand-charge peak holds against its own-load forecast plus this
    many times that forecast's mean absolute error (0: the forecast alone). A plan fills a site up to its monthly
    peak; a load above its forecast then sets a new one. Opt-in: on the V2B building month (docs/backtest.md) 2 cuts
    the building's peak from 412.4 to 400.2 kW, the feeder's unchanged, but without V2B it moves charging into the
    feeder's evening peak (767.95 kW against 758.59, uncontrolled 759.63)."""
    dispatch_site_meter_stale_seconds: int = 1800
    """EVGRID_DISPATCH_SITE_METER_STALE_SECONDS: no behind-the-meter discharge when the site meter is older."""
    dispatch_battery_round_trip_efficiency: float = 0.9
    """EVGRID_DISPATCH_BATTERY_ROUND_TRIP_EFFICIENCY: stationary battery efficiency when not registered (0-1)."""
    dispatch_battery_min_soc_pct: float = 10.0
    """EVGRID_DISPATCH_BATTERY_MIN_SOC_PCT: stationary battery SoC floor when not registered, %."""
    dispatch_battery_target_soc_pct: float = 50.0
    """EVGRID_DISPATCH_BATTERY_TARGET_SOC_PCT: a stationary battery's plan ends its horizon at least this full (or as
    full as it is, if more), %: without it each re-plan would put the recharge off again."""
    dispatch_flexibility_hours: float = 4.0
    """EVGRID_DISPATCH_FLEXIBILITY_HOURS: horizon of the Flexibility record published at each plan, hours."""
    dispatch_track_requests: bool = True
    """EVGRID_DISPATCH_TRACK_REQUESTS: solve a no-request baseline plan to report delivered change."""

    # --- OCPP gateway (issue 16, streams/ocpp) ----------------------------------------------------------
    ocpp_host: str = "0.0.0.0"
    """EVGRID_OCPP_HOST: address ``evgrid ocpp-gateway`` listens on."""
    ocpp_port: int = 9000
    """EVGRID_OCPP_PORT: port of ``evgrid ocpp-gateway`` (stations connect to ``wss://HOST:PORT/<station_id>``)."""
    ocpp_security_profile: int = 2
    """EVGRID_OCPP_SECURITY_PROFILE: 2 = basic auth over TLS, 3 = TLS client certificates (CN = station id),
    1 = basic auth without TLS (only behind a TLS-terminating proxy)."""
    ocpp_certfile: str | None = None
    """EVGRID_OCPP_CERTFILE: the gateway's TLS certificate chain (PEM)."""
    ocpp_keyfile: str | None = None
    """EVGRID_OCPP_KEYFILE: the gateway's TLS private key (PEM)."""
    ocpp_cafile: str | None = None
    """EVGRID_OCPP_CAFILE: CA that signs station certificates (security profile 3)."""
    ocpp_credentials: str = ".run/ocpp-credentials.json"
    """EVGRID_OCPP_CREDENTIALS: station password hashes (scrypt) written by ``evgrid chargers register``."""
    ocpp_heartbeat_seconds: int = 300
    """EVGRID_OCPP_HEARTBEAT_SECONDS: heartbeat interval given to stations in the BootNotification answer."""
    ocpp_event_time: bool = False
    """EVGRID_OCPP_EVENT_TIME: the gateway's clock is the newest station timestamp, not the wall clock. Only for
    simulated stations (a closed loop in simulated time); real stations need the wall clock."""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


# --- typed config for the core, built here at the edge (the core never imports this module) ----------------
MIN_MS, HOUR_MS = 60_000, 3_600_000


def forecaster_config(s: Settings) -> ForecasterConfig:
    """The forecaster's config (EVGRID_INTERVAL_MINUTES, EVGRID_HORIZON_HOURS, EVGRID_FORECAST_*, ...)."""
    from streams.forecasting.forecaster import DEFAULT_MODEL, ForecasterConfig

    interval_ms = s.interval_minutes * MIN_MS
    return ForecasterConfig(
        interval_ms=interval_ms,
        horizon=s.horizon_hours * HOUR_MS // interval_ms,
        model=DEFAULT_MODEL if s.forecast_model == "default" else s.forecast_model,
        coverage=float(s.forecast_coverage),
        timezone=str(s.local_timezone),
        holiday_country=s.holiday_country or None,
        forgetting=float(s.forecast_forgetting),
        min_learn_share=float(s.forecast_min_learn_share),
        warmup_intervals=int(float(s.forecast_warmup_days) * 86_400_000 // interval_ms),
    )


def dispatch_config(s: Settings) -> DispatchConfig:
    """The dispatcher's config (EVGRID_DISPATCH_*, EVGRID_SETPOINT_*, the safety and incentive settings)."""
    from streams.dispatch.dispatcher import DispatchConfig
    from streams.dispatch.incentives import IncentiveParams
    from streams.dispatch.planner import PlannerWeights
    from streams.dispatch.safety import SafetyRules

    step = s.interval_minutes * MIN_MS
    return DispatchConfig(
        step_ms=step,
        horizon_ms=s.horizon_hours * HOUR_MS,
        fine_ms=int(s.dispatch_fine_horizon_minutes * MIN_MS) if s.dispatch_coarse_step_minutes > 0 else None,
        coarse_step_ms=int(s.dispatch_coarse_step_minutes * MIN_MS) or None,
        replan_ms=max(step, int(s.dispatch_replan_minutes * MIN_MS)),
        solver_time_limit_s=s.solver_time_limit_s,
        solver_iteration_limit=s.solver_iteration_limit,
        rules=SafetyRules(reserve_soc_pct=s.reserve_soc_pct, stale_seconds=s.stale_telemetry_seconds,
                          fallback_kw=s.fallback_kw),
        weights=PlannerWeights(cycling_per_kwh=s.cycling_cost_per_kwh, flatten_per_kwh=s.dispatch_flatten_per_kwh,
                               flatten_levels=s.dispatch_flatten_levels,
                               early_per_kwh_hour=s.dispatch_early_per_kwh_hour,
                               near_peak_per_kw=s.dispatch_near_peak_per_kw,
                               near_peak_ms=int(s.dispatch_near_peak_minutes * MIN_MS),
                               upper_peak_per_kw=s.dispatch_upper_peak_per_kw,
                               scenario_share=s.dispatch_scenario_share),
        incentives=IncentiveParams(delay_price_per_kwh=s.incentive_delay_price_per_kwh,
                                   export_price_per_kwh=s.incentive_export_price_per_kwh,
                                   currency=s.currency),
        default_import_limit_kw=s.default_import_limit_kw,
        default_export_limit_kw=s.default_export_limit_kw,
        default_price_per_kwh=s.default_price_per_kwh,
        setpoint_threshold_kw=s.setpoint_change_threshold_kw,
        setpoint_refresh_ms=int(s.setpoint_refresh_seconds * 1000),
        setpoint_validity_ms=int(s.setpoint_validity_seconds * 1000),
        setpoint_lag_ms=int(s.setpoint_lag_seconds * 1000),
        schedule_ms=int(s.setpoint_schedule_hours * HOUR_MS),
        forecast_arrivals=s.dispatch_forecast_arrivals,
        near_peak_upper_ms=int(s.dispatch_near_peak_upper_minutes * MIN_MS),
        ramp_hold=s.dispatch_ramp_hold,
        charge_taper_soc_pct=s.dispatch_charge_taper_soc_pct or None,
        base_period_max=s.dispatch_base_period_max,
        timezone=s.local_timezone,
        site_demand_charge_per_kw=s.dispatch_site_demand_charge_per_kw,
        site_peak_margin=s.dispatch_site_peak_margin,
        site_meter_stale_ms=int(s.dispatch_site_meter_stale_seconds * 1000),
        battery_round_trip_efficiency=s.dispatch_battery_round_trip_efficiency,
        battery_min_soc_pct=s.dispatch_battery_min_soc_pct,
        battery_target_soc_pct=s.dispatch_battery_target_soc_pct,
        flexibility_horizon_ms=int(s.dispatch_flexibility_hours * HOUR_MS),
        track_requests=s.dispatch_track_requests,
    )


def feeder_config(s: Settings) -> FeederConfig:
    """One feeder runtime's config: interval, grace, alignment, plan lag, forecaster and dispatcher."""
    from streams.pipeline.config import FeederConfig

    return FeederConfig(step_ms=s.interval_minutes * MIN_MS, grace_ms=s.grace_seconds * 1000,
                        align_idle_ms=s.align_idle_seconds * 1000, max_plan_lag_ms=s.max_plan_lag_seconds * 1000,
                        history_ms=s.max_telemetry_lag_hours * 3_600_000,
                        forecaster=forecaster_config(s), dispatch=dispatch_config(s))


def pipeline_config(s: Settings) -> PipelineConfig:
    """A worker's config (:class:`~streams.pipeline.worker.FeederWorker`)."""
    from streams.pipeline.config import PipelineConfig

    return PipelineConfig(feeder=feeder_config(s), max_message_bytes=s.max_message_bytes,
                          max_future_ms=s.max_future_seconds * 1000)
