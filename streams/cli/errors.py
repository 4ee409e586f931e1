"""How the ``evgrid`` command line reports failures: one or two lines and an exit code, no traceback.

Exit codes: 2 bad input (a file, a line, an option), 3 a service that cannot be reached (Kafka broker),
1 anything else (an internal error; ``--debug`` or ``EVGRID_DEBUG=1`` shows its traceback).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import Any

__all__ = ["BrokerUnreachable", "Failure", "InputError", "describe", "file_error"]

BAD_INPUT = 2
UNREACHABLE = 3
INTERNAL = 1


class InputError(ValueError):
    """Bad input the user can fix (names the file, line or option)."""


class BrokerUnreachable(RuntimeError):
    """No Kafka broker answered at ``address`` within the preflight timeout."""

    def __init__(self, address: str, detail: str = "") -> None:
        self.address = address
        super().__init__(f"cannot reach the Kafka broker at {address}" + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Failure:
    """What the CLI prints (``lines``, to stderr) and its exit code."""

    code: int
    lines: tuple[str, ...]


_HINT_DEBUG = "(run with --debug for the traceback)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if len(text.splitlines()) <= 2 else " ".join(text.split())[:400]


def describe(exc: BaseException) -> Failure:
    """The message and exit code for an exception a command raised."""
    if isinstance(exc, BrokerUnreachable):
        return Failure(UNREACHABLE, (f"error: {exc}; start the local one with `evgrid infra up` or set "
                                     "EVGRID_BOOTSTRAP_SERVERS",))
    kafka = _kafka_failure(exc)
    if kafka is not None:
        return kafka
    if isinstance(exc, FileNotFoundError):
        name = exc.filename or _first_line(exc)
        return Failure(BAD_INPUT, (f"error: file not found: {name}",))
    if isinstance(exc, IsADirectoryError):
        return Failure(BAD_INPUT, (f"error: expected a file, got a directory: {exc.filename}",))
    if isinstance(exc, PermissionError):
        return Failure(BAD_INPUT, (f"error: permission denied: {exc.filename}",))
    if isinstance(exc, UnicodeDecodeError):
        return Failure(BAD_INPUT, ("error: the file is not UTF-8 text (is it the right file?)",))
    if _is_validation_error(exc):
        return Failure(BAD_INPUT, (f"error: {_validation_text(exc)}",))
    if isinstance(exc, ValueError | csv.Error | KeyError) or type(exc).__module__.startswith("yaml"):
        return Failure(BAD_INPUT, (f"error: {_first_line(exc)}",))
    return Failure(INTERNAL, (f"internal error: {type(exc).__name__}: {_first_line(exc)}", _HINT_DEBUG))


def file_error(path: object, exc: BaseException) -> InputError:
    """An ``InputError`` naming ``path`` for a YAML, validation or value error raised while reading it."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:  # a YAML syntax error: line and column, 1-based
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        return InputError(f"{path}: line {mark.line + 1}, column {mark.column + 1}: {problem}")
    text = _validation_text(exc) if _is_validation_error(exc) else _first_line(exc)
    return InputError(text if text.startswith(str(path)) else f"{path}: {text}")


def _kafka_failure(exc: BaseException) -> Failure | None:
    try:
        from streams.kafka.clients import KafkaException
    except ImportError:  # pragma: no cover - a dependency
        return None
    if not isinstance(exc, KafkaException):
        return None
    err: Any = exc.args[0] if exc.args else None
    text = err.str() if hasattr(err, "str") else str(exc)
    return Failure(UNREACHABLE, (f"error: Kafka: {text}", "is the broker up? `evgrid infra status`"))


def _is_validation_error(exc: BaseException) -> bool:
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover - a dependency
        return False
    return isinstance(exc, ValidationError)


def _validation_text(exc: BaseException) -> str:
    errors = exc.errors()  # type: ignore[attr-defined]
    from_env = getattr(exc, "title", "") == "Settings"  # EVGRID_* environment variables
    parts = []
    for e in errors[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ()))
        if from_env and loc:
            loc = f"EVGRID_{loc.upper()}"
        parts.append(f"{loc}: {e.get('msg')}" if loc else str(e.get("msg")))
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more
