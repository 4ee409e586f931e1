"""``evgrid sites``: a site's interconnection status (issue 21), set and shown from the registry topic.

``set-status`` republishes the site's newest ``SiteRegistration`` with the new status, its date and a newer
``registered_at`` (the worker applies registrations in that order, revokes power no longer allowed at once and
tells the utility on ``evgrid.utility.events``). The registry topic keeps every record, so ``history`` is
every registration of the site in order. The pure parts (:func:`with_status`, :func:`history_rows`) are tested
without a broker.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Annotated

import typer

from streams.cli.errors import InputError
from streams.contracts.models import SiteRegistration
from streams.dispatch.interconnection import STATUSES
from streams.settings import Settings

__all__ = ["history_rows", "register", "with_status"]

sites_app = typer.Typer(no_args_is_help=True, help="Sites: interconnection status and its history.")

FUTURE_SLACK_MS = 60_000


def with_status(last: SiteRegistration, status: str, since_ms: int | None, now_ms: int) -> SiteRegistration:
    """``last`` with ``status`` in effect since ``since_ms`` (default now), registered now (after ``last``).

    A status takes effect when the worker applies it: a date in the future is refused (:class:`InputError`).
    """
    if status not in STATUSES:
        raise InputError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    since = now_ms if since_ms is None else since_ms
    if since > now_ms + FUTURE_SLACK_MS:
        raise InputError("--since is in the future; a status takes effect when it is published")
    return last.model_copy(update={"interconnection_status": status, "status_since": since,
                                   "registered_at": max(now_ms, last.registered_at + 1)})


def history_rows(records: Iterable[SiteRegistration], site_id: str) -> list[dict]:
    """Every registration of ``site_id``, oldest first (by ``registered_at``), as JSON-ready rows."""
    from streams.contracts.timeparse import iso_utc

    rows = []
    for r in sorted((r for r in records if r.site_id == site_id), key=lambda r: r.registered_at):
        rows.append({"registered_at": iso_utc(r.registered_at), "status": r.interconnection_status,
                     "status_since": iso_utc(r.status_since) if r.status_since is not None else None,
                     "interconnection_class": r.interconnection_class, "export_limit_kw": r.export_limit_kw,
                     "inverter_location": r.inverter_location, "feeder_id": r.feeder_id, "active": r.active})
    return rows


def _read_sites(s: Settings) -> list[SiteRegistration]:
    from streams.cli.preflight import require_broker
    from streams.contracts.codec import DecodeError, default_codec
    from streams.contracts.models import decode_record
    from streams.contracts.topics import CHARGER_REGISTRY, topic_name
    from streams.kafka.clients import consume_all

    require_broker(s)
    codec = default_codec()
    out = []
    for msg in consume_all(s, [topic_name(CHARGER_REGISTRY, s.topic_prefix)], timeout=30, idle=1.0):
        try:
            rec = decode_record(codec, msg.value() or b"")
        except DecodeError:
            continue  # the worker dead-letters it; not a site's history
        if isinstance(rec, SiteRegistration):
            out.append(rec)
    return out


@sites_app.command("set-status")
def set_status_cmd(
    site: Annotated[str, typer.Argument(help="Site id (SiteRegistration.site_id).")],
    status: Annotated[str, typer.Argument(help=f"One of: {', '.join(STATUSES)}.")],
    since: Annotated[str | None, typer.Option(help="When the status took effect (ISO 8601 or epoch ms); "
                                                    "default now. Never in the future.")] = None,
) -> None:
    """Publish SITE's registration with interconnection STATUS on the registry topic."""
    from streams.contracts.codec import default_codec
    from streams.contracts.models import encode_record
    from streams.contracts.timeparse import parse_timestamp_ms
    from streams.contracts.topics import CHARGER_REGISTRY, topic_name
    from streams.kafka.clients import make_producer, produce_records

    if status not in STATUSES:
        raise InputError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    try:
        since_ms = parse_timestamp_ms(since) if since is not None else None
    except ValueError as exc:
        raise InputError(f"--since {since!r}: {exc}") from None
    s = Settings()
    known = [r for r in _read_sites(s) if r.site_id == site]
    if not known:
        raise InputError(f"no SiteRegistration of site {site!r} on the registry topic; register the site first")
    last = max(known, key=lambda r: r.registered_at)
    new = with_status(last, status, since_ms, int(time.time() * 1000))
    topic = topic_name(CHARGER_REGISTRY, s.topic_prefix)
    stats = produce_records(make_producer(s), topic, [(new.feeder_id.encode(), encode_record(default_codec(), new),
                                                       new.registered_at, None)], flush_timeout=30)
    if stats.failed:
        raise RuntimeError(f"sites set-status: not delivered: {dict(stats.errors)}")
    typer.echo(json.dumps({"site_id": site, "previous_status": last.interconnection_status, "status": status,
                           "topic": topic, "history": history_rows([*known, new], site)}, indent=1))


@sites_app.command("history")
def history_cmd(site: Annotated[str, typer.Argument(help="Site id.")]) -> None:
    """Every registration of SITE on the registry topic, oldest first (its status history)."""
    rows = history_rows(_read_sites(Settings()), site)
    if not rows:
        raise InputError(f"no SiteRegistration of site {site!r} on the registry topic")
    typer.echo(json.dumps({"site_id": site, "status": rows[-1]["status"], "history": rows}, indent=1))


def register(app: typer.Typer) -> None:
    """Add the ``sites`` group to the evgrid CLI."""
    app.add_typer(sites_app, name="sites")
