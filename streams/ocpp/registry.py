"""Who may connect: registrations (from ``evgrid.charger.registry``), station passwords stored hashed, and the
operator's onboarding CSV of ``evgrid chargers register``.

A station's OCPP identity is its evgrid ``charger_id``. Passwords (OCPP security profile 2, 16-40 characters as
OCPP requires) are kept only as salted scrypt hashes in a JSON file ``{station_id: "scrypt$n$r$p$salt$hash"}``;
a verified password is remembered as its SHA-256 so reconnections do not pay the scrypt cost again.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from streams.contracts.models import ChargerRegistration, describe_validation_error

__all__ = ["CsvError", "Directory", "hash_password", "load_credentials", "merge_credentials", "read_chargers_csv",
           "save_credentials", "verify_password"]

_N, _R, _P = 2 ** 14, 8, 1
MIN_PASSWORD, MAX_PASSWORD = 16, 40


def hash_password(password: str, *, salt: bytes | None = None, n: int = _N) -> str:
    """A salted scrypt hash of ``password`` (``scrypt$n$r$p$salt$hash``, hex); the cost ``n`` is stored with it."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=_R, p=_P, dklen=32)
    return f"scrypt${n}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash (constant-time compare)."""
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2, maxmem=256 * 1024 * 1024)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def load_credentials(path: Path) -> dict[str, str]:
    """``{station_id: hash}`` from ``path`` (empty when the file does not exist)."""
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{path}: expected a JSON object of station id -> password hash")
    return data


def save_credentials(path: Path, creds: dict[str, str]) -> None:
    """Write ``creds`` atomically, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(creds, fh, indent=1, sort_keys=True)
    tmp.replace(path)


@dataclass
class Directory:
    """Registered stations (newest registration per charger) and their password hashes."""

    registrations: dict[str, ChargerRegistration] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)
    _verified: dict[str, bytes] = field(default_factory=dict, repr=False)

    def register(self, reg: ChargerRegistration) -> None:
        """Apply a registration; an older one (``registered_at``) than the one held is ignored."""
        held = self.registrations.get(reg.charger_id)
        if held is None or reg.registered_at >= held.registered_at:
            self.registrations[reg.charger_id] = reg

    def active(self, station_id: str) -> ChargerRegistration | None:
        """The registration of ``station_id`` when it is registered and active."""
        reg = self.registrations.get(station_id)
        return reg if reg is not None and reg.active else None

    def check_password(self, station_id: str, password: str) -> bool:
        """Basic-auth check (slow the first time: scrypt; run it off the event loop)."""
        stored = self.credentials.get(station_id)
        if stored is None:
            return False
        quick = hashlib.sha256(stored.encode() + b"\0" + password.encode()).digest()
        seen = self._verified.get(station_id)
        if seen is not None and hmac.compare_digest(seen, quick):
            return True
        if verify_password(password, stored):
            self._verified[station_id] = quick
            return True
        return False


class CsvError(ValueError):
    """An onboarding CSV that cannot be used (one line for the operator)."""


_REQUIRED = ("station", "feeder", "site", "class", "export_limit_kw", "rating_kw")
_BOOL = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": False}


def read_chargers_csv(path: Path, registered_at: int) -> tuple[list[ChargerRegistration], dict[str, str]]:
    """Registrations and plain passwords (``password`` column, optional) of an onboarding CSV.

    Columns: ``station,feeder,site,class,export_limit_kw,rating_kw`` and optionally ``customer``,
    ``bidirectional``, ``max_discharge_kw``, ``v2g_enrolled``, ``inverter_location``, ``battery_capacity_kwh``,
    ``password``. ``class`` is the interconnection class (non_parallel, parallel_non_exporting,
    parallel_exporting). Raises :class:`CsvError` naming the first bad line.
    """
    try:
        with path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CsvError(f"{path}: cannot read: {exc}") from exc
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise CsvError(f"{path}: missing column(s) {', '.join(missing)}")
    if not rows:
        raise CsvError(f"{path}: no stations (one line per station after the header)")
    regs: list[ChargerRegistration] = []
    passwords: dict[str, str] = {}
    seen: set[str] = set()
    for line, raw in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        try:
            reg = _registration(row, registered_at)
        except (ValueError, KeyError) as exc:
            msg = describe_validation_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise CsvError(f"{path}:{line}: {msg}") from exc
        if reg.charger_id in seen:
            raise CsvError(f"{path}:{line}: station {reg.charger_id} appears twice")
        seen.add(reg.charger_id)
        pw = row.get("password", "")
        if pw:
            if not MIN_PASSWORD <= len(pw) <= MAX_PASSWORD:
                raise CsvError(f"{path}:{line}: password must be {MIN_PASSWORD}-{MAX_PASSWORD} characters (OCPP)")
            passwords[reg.charger_id] = pw
        regs.append(reg)
    return regs, passwords


def _bool(row: dict[str, str], key: str) -> bool:
    value = row.get(key, "").lower()
    if value not in _BOOL:
        raise ValueError(f"{key}: {row[key]!r} is not true/false")
    return _BOOL[value]


def _num(row: dict[str, str], key: str, default: float | None = None) -> float:
    text = row.get(key, "")
    if text == "":
        if default is None:
            raise ValueError(f"{key}: missing")
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a number") from None


def _registration(row: dict[str, str], registered_at: int) -> ChargerRegistration:
    max_discharge = _num(row, "max_discharge_kw", 0.0)
    capacity = _num(row, "battery_capacity_kwh") if row.get("battery_capacity_kwh") else None
    bidirectional = _bool(row, "bidirectional") if row.get("bidirectional") else bool(max_discharge)
    return ChargerRegistration(
        charger_id=row["station"], feeder_id=row["feeder"], site_id=row["site"],
        customer_id=row.get("customer") or row["site"], bidirectional=bidirectional,
        inverter_location=row.get("inverter_location") or "onboard",  # type: ignore[arg-type]
        interconnection_class=row["class"],  # type: ignore[arg-type]
        export_limit_kw=_num(row, "export_limit_kw", 0.0), v2g_enrolled=_bool(row, "v2g_enrolled"),
        max_charge_kw=_num(row, "rating_kw"), max_discharge_kw=max_discharge,
        battery_capacity_kwh=capacity, registered_at=registered_at,
    )


def merge_credentials(creds: dict[str, str], passwords: Iterable[tuple[str, str]], n: int = _N) -> dict[str, str]:
    """``creds`` with the hashes of ``(station, password)`` added or replaced."""
    out = dict(creds)
    for station, pw in passwords:
        out[station] = hash_password(pw, n=n)
    return out
