"""``evgrid ocpp-gateway`` and ``evgrid chargers register FILE.csv``."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import socket
import time
from pathlib import Path
from typing import Annotated

import typer

from streams.settings import Settings

__all__ = ["register"]

chargers_app = typer.Typer(no_args_is_help=True, help="Onboard charging stations.")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


def gateway_cmd(
    host: Annotated[str | None, typer.Option(help="Listen address (default EVGRID_OCPP_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port (default EVGRID_OCPP_PORT).")] = None,
    security_profile: Annotated[int | None, typer.Option(help="OCPP security profile 1, 2 or 3.")] = None,
    certfile: Annotated[str | None, typer.Option(help="TLS certificate chain (PEM).")] = None,
    keyfile: Annotated[str | None, typer.Option(help="TLS private key (PEM).")] = None,
    cafile: Annotated[str | None, typer.Option(help="CA of station certificates (profile 3).")] = None,
    credentials: Annotated[Path | None, typer.Option(help="Station password hashes (JSON).")] = None,
    name: Annotated[str | None, typer.Option(help="Gateway name in metrics and dead letters.")] = None,
    metrics: Annotated[bool, typer.Option(help="Write ocpp_profile / ocpp_gateway points to InfluxDB.")] = True,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
) -> None:
    """Run the OCPP 2.0.1/2.1 CSMS gateway: setpoints to stations, station events to telemetry."""
    from streams.kafka.clients import KafkaException
    from streams.ocpp.gateway import GatewayConfig
    from streams.ocpp.handshake import server_ssl_context
    from streams.ocpp.registry import Directory, load_credentials

    s = Settings()
    profile = s.ocpp_security_profile if security_profile is None else security_profile
    if profile not in (1, 2, 3):
        raise _fail(f"--security-profile must be 1, 2 or 3, not {profile}")
    cert, key, ca = certfile or s.ocpp_certfile, keyfile or s.ocpp_keyfile, cafile or s.ocpp_cafile
    ctx = None
    if profile in (2, 3):
        if not cert or not key:
            raise _fail(f"security profile {profile} needs --certfile and --keyfile (EVGRID_OCPP_CERTFILE/KEYFILE)")
        try:
            ctx = server_ssl_context(cert, key, ca, require_client_cert=profile == 3)
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot load TLS material: {exc}") from exc
    cred_path = credentials or Path(s.ocpp_credentials)
    try:
        creds = load_credentials(cred_path) if profile != 3 else {}
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read credentials: {exc}") from exc
    cfg = GatewayConfig(host=host or s.ocpp_host, port=s.ocpp_port if port is None else port,
                        security_profile=profile, ssl_context=ctx, heartbeat_seconds=s.ocpp_heartbeat_seconds,
                        name=name or f"ocpp-{socket.gethostname()}", event_time=s.ocpp_event_time,
                        default_profile_kw=s.fallback_kw)
    try:
        asyncio.run(_serve(s, cfg, Directory(credentials=creds), metrics, max_seconds))
    except KafkaException as exc:
        raise _fail(f"ocpp-gateway: Kafka: {exc}") from exc
    except OSError as exc:
        raise _fail(f"ocpp-gateway: cannot listen on {cfg.host}:{cfg.port}: {exc}") from exc


async def _serve(settings: Settings, cfg: object, directory: object, metrics: bool, max_seconds: float | None) -> None:
    from streams.ocpp.connection import HANDLERS
    from streams.ocpp.edge import ControlFeed, KafkaOutputs, gateway_point
    from streams.ocpp.gateway import Gateway, GatewayConfig
    from streams.ocpp.registry import Directory
    from streams.ocpp.schemas import warm
    from streams.sinks.influx import InfluxSink

    assert isinstance(cfg, GatewayConfig) and isinstance(directory, Directory)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sink = InfluxSink.from_settings(settings, worker=cfg.name) if metrics else None
    outputs = KafkaOutputs(settings, cfg.name, sink)
    gw = Gateway(directory, outputs, cfg)
    t0 = time.monotonic()
    compiled = warm([*HANDLERS, "SetChargingProfile", "ClearChargingProfile"])
    typer.echo(json.dumps({"schemas_compiled": compiled, "seconds": round(time.monotonic() - t0, 1)}), err=True)
    feed = ControlFeed(settings, gw, loop)
    feed.start()
    try:
        await feed.caught_up.wait()
        await gw.start()
        gc.collect()
        gc.freeze()  # the registry, setpoints and compiled schemas stay: keep them out of every collection
        typer.echo(json.dumps({"listening": f"{cfg.host}:{gw.port}", "security_profile": cfg.security_profile,
                               "stations_registered": len(directory.registrations),
                               "setpoints_held": len(gw.setpoints)}), err=True)
        deadline = time.monotonic() + max_seconds if max_seconds else None
        last_stats = time.monotonic()
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            outputs.poll()
            if sink is not None and time.monotonic() - last_stats >= settings.monitor_pipeline_seconds:
                last_stats = time.monotonic()
                sink.write([gateway_point(gw, int(time.time() * 1000))])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
    finally:
        await gw.stop()
        feed.stop()
        outputs.flush()
        if sink is not None:
            sink.write([gateway_point(gw, int(time.time() * 1000))])
            sink.close()
        typer.echo(json.dumps({"stats": gw.stats.to_dict(), "control_records_skipped": feed.skipped}), err=True)


@chargers_app.command("register")
def register_cmd(
    file: Annotated[Path, typer.Argument(help="CSV: station,feeder,site,class,export_limit_kw,rating_kw[,...]")],
    credentials: Annotated[Path | None, typer.Option(help="Password hash file (default EVGRID_OCPP_CREDENTIALS).")
                           ] = None,
) -> None:
    """Publish a registration per station of FILE (and store the hashes of its passwords)."""
    from streams.contracts.codec import default_codec
    from streams.contracts.models import encode_record
    from streams.contracts.topics import CHARGER_REGISTRY, topic_name
    from streams.kafka.clients import KafkaException, make_producer, produce_records
    from streams.ocpp.registry import CsvError, load_credentials, merge_credentials, read_chargers_csv, save_credentials

    s = Settings()
    now = int(time.time() * 1000)
    try:
        regs, passwords = read_chargers_csv(file, now)
    except CsvError as exc:
        raise _fail(str(exc)) from exc
    cred_path = credentials or Path(s.ocpp_credentials)
    try:
        creds = merge_credentials(load_credentials(cred_path), passwords.items()) if passwords else None
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read credentials: {exc}") from exc
    codec = default_codec()
    records = [(r.feeder_id.encode(), encode_record(codec, r), r.registered_at, None) for r in regs]
    try:
        stats = produce_records(make_producer(s), topic_name(CHARGER_REGISTRY, s.topic_prefix), records,
                                flush_timeout=30)
    except KafkaException as exc:
        raise _fail(f"chargers register: Kafka: {exc}") from exc
    if stats.failed:
        raise _fail(f"chargers register: {stats.failed} registrations not delivered: {dict(stats.errors)}")
    if creds is not None:
        save_credentials(cred_path, creds)
    typer.echo(json.dumps({"registered": len(regs), "passwords": len(passwords),
                           "credentials": str(cred_path) if passwords else None,
                           "topic": topic_name(CHARGER_REGISTRY, s.topic_prefix)}, indent=1))


def register(app: typer.Typer) -> None:
    """Add ``ocpp-gateway`` and the ``chargers`` group to the evgrid CLI."""
    app.command("ocpp-gateway")(gateway_cmd)
    app.add_typer(chargers_app, name="chargers")
