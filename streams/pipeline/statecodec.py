"""A safe, versioned encoding of checkpointed object graphs (feeder state, forecasters, river models).

Blob: ``MAGIC`` + one format-version byte + a zstandard frame of msgpack. The msgpack body is a tree: scalars
(None, bool, int, float, str, bytes) are themselves, every other value is an array ``[kind, ...]``. Each such
node (except a reference) gets the next number in depth-first order, so an object met twice is written once
and then as ``[REF, number]``: shared objects stay shared (a river pipeline's steps, a tree's splitter).
Cycles are refused when encoding.

Decoding never calls code named by the data: classes are looked up only in modules under an allowed prefix
(``streams.``, ``river.``), must really be classes defined there, and instances are rebuilt with
``object.__new__`` and ``object.__setattr__`` (pydantic models with ``model_validate``, named tuples with
``tuple.__new__``). Whatever the bytes, decoding raises only :class:`StateDecodeError`. A value of a type not
listed here raises :class:`StateEncodeError` naming where it is, so a new field type fails a test, not a worker.
"""

from __future__ import annotations

import enum
import functools
import importlib
import io
import random
import re
from collections import Counter, OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone
from statistics import NormalDist
from types import FunctionType
from typing import Any
from zoneinfo import ZoneInfo

import msgpack
import numpy as np
import zstandard
from pydantic import BaseModel

__all__ = ["ALLOWED_PREFIXES", "FORMAT_VERSION", "MAGIC", "StateDecodeError", "StateEncodeError", "decode",
           "encode"]

MAGIC = b"EVGS"
FORMAT_VERSION = 1
"""Version written. A later version must keep reading every earlier one (tests/fixtures/state_v1.bin)."""
READABLE_VERSIONS = frozenset({1})
ALLOWED_PREFIXES = ("streams.", "river.")
MAX_BODY_BYTES = 256 * 1024 * 1024  # a decompression bomb stops here
LEVEL = 3  # zstandard level

# Node kinds (the first item of a node array). Never renumber: stored blobs use them.
REF, LIST, TUPLE, DICT, SET, FROZENSET, DEQUE, DEFAULTDICT, COUNTER, ODICT = range(10)
NDARRAY, NPSCALAR, ENUM, OBJECT, MODEL, NAMEDTUPLE = range(10, 16)
DATETIME, DATE, TIMEDELTA, ZONE, FIXED_ZONE, RANDOM, VECTORDICT, ADWIN, FUNCTION, NORMAL = range(16, 26)

DTYPES = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8",
                    "<c8", "<c16"})
FACTORIES: dict[str, Callable[[], Any]] = {"float": float, "int": int, "list": list, "dict": dict, "set": set,
                                           "str": str}
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SCALARS = (type(None), bool, int, float, str, bytes)
PLAIN = frozenset({type(None), bool, float, str, bytes})  # written as they are, without a call (speed)
FUNCTIONS = frozenset({  # functions a state may refer to (never called when decoding): river's tree splitters
    "river.tree.splitter.ebst_splitter:EBSTNode._update_estimator_univariate",
    "river.tree.splitter.ebst_splitter:EBSTNode._update_estimator_multivariate",
})


class StateEncodeError(TypeError):
    """A value the state format cannot hold; ``path`` says where it is in the object graph."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def __str__(self) -> str:
        return f"{self.message} at {''.join(self.path) or 'the root'}"


class StateDecodeError(ValueError):
    """The bytes are not a readable state blob (corrupt, truncated, another version, or not allowed)."""


def encode(obj: Any, allowed: tuple[str, ...] = ALLOWED_PREFIXES) -> bytes:
    """The blob of ``obj``: header + zstd(msgpack). Raises :class:`StateEncodeError` for what it cannot hold."""
    try:
        body = msgpack.packb(_Encoder(allowed).node(obj), use_bin_type=True)
    except (RecursionError, ValueError) as exc:  # nested deeper than msgpack (512) or Python allows (pickle too)
        raise StateEncodeError(f"the object graph is nested too deeply ({exc})") from exc
    return MAGIC + bytes([FORMAT_VERSION]) + zstandard.ZstdCompressor(level=LEVEL).compress(body)


def decode(blob: bytes, allowed: tuple[str, ...] = ALLOWED_PREFIXES) -> Any:
    """The object graph of ``blob``. Raises :class:`StateDecodeError`, and nothing else, if it is not readable."""
    try:
        if not isinstance(blob, bytes | bytearray | memoryview):
            raise TypeError(f"a blob is bytes, not {type(blob).__name__}")
        blob = bytes(blob)
        if blob[:len(MAGIC)] != MAGIC or len(blob) <= len(MAGIC):
            raise ValueError("not a state blob (no magic header)")
        version = blob[len(MAGIC)]
        if version not in READABLE_VERSIONS:
            raise ValueError(f"format version {version} is not readable (this build reads "
                             f"{sorted(READABLE_VERSIONS)})")
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(blob[len(MAGIC) + 1:])) as reader:
            body = reader.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            raise ValueError(f"body larger than {MAX_BODY_BYTES} bytes")
        tree = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True)
        return _Decoder(allowed).value(tree)
    except StateDecodeError:
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # whatever the bytes make fail; BaseException: a Rust panic in river is one
        raise StateDecodeError(f"{type(exc).__name__}: {exc}"[:500]) from exc


def _class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _allowed(module: str, allowed: tuple[str, ...]) -> bool:
    return module.startswith(allowed)


@functools.cache
def _vectordict_type() -> type:
    from river.utils import VectorDict  # river's Rust types, imported when first needed (river loads slowly)

    return VectorDict


@functools.cache
def _adwin_type() -> type:
    from river._river_rust.drift import AdaptiveWindowing

    return AdaptiveWindowing


class _Encoder:
    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self.numbers: dict[int, int] = {}  # id(obj) -> node number
        self.kept: list[Any] = []  # keeps transient objects alive so their ids are not reused
        self.open: set[int] = set()  # objects being encoded: met again = a cycle
        self.count = 0
        self.vectordict, self.adwin = _vectordict_type(), _adwin_type()

    def node(self, obj: Any) -> Any:
        t = type(obj)
        if t in SCALARS:
            if t is int and not -(2**63) <= obj < 2**64:
                raise StateEncodeError(f"integer {obj} does not fit 64 bits")
            return obj
        key = id(obj)
        if key in self.open:
            raise StateEncodeError(f"a cycle through this {t.__name__}")
        number = self.numbers.get(key)
        if number is not None:
            return [REF, number]
        self.numbers[key] = self.count
        self.count += 1
        self.kept.append(obj)
        self.open.add(key)
        try:
            return self._node(obj, t)
        finally:
            self.open.discard(key)

    def _items(self, items: Iterable[Any], step: str = "[{}]") -> list[Any]:
        out = []
        for i, v in enumerate(items):
            try:
                out.append(v if type(v) in PLAIN else self.node(v))
            except StateEncodeError as exc:
                exc.path.insert(0, step.format(i))
                raise
        return out

    def _pairs(self, mapping: Any) -> list[Any]:
        out = []
        for k, v in mapping.items():
            try:
                out.append(k if type(k) in PLAIN else self.node(k))
                out.append(v if type(v) in PLAIN else self.node(v))
            except StateEncodeError as exc:
                exc.path.insert(0, f"[{k!r}]")
                raise
        return out

    def _node(self, obj: Any, t: type) -> list[Any]:
        if t is list:
            return [LIST, *self._items(obj)]
        if t is tuple:
            return [TUPLE, *self._items(obj)]
        if t is dict:
            return [DICT, *self._pairs(obj)]
        if t is set or t is frozenset:
            return [SET if t is set else FROZENSET, *self._items(sorted(obj, key=repr))]
        if t is deque:
            return [DEQUE, obj.maxlen, *self._items(obj)]
        if t is defaultdict:
            factory = obj.default_factory
            name = next((n for n, f in FACTORIES.items() if f is factory), None)
            if factory is not None and name is None:
                raise StateEncodeError(f"defaultdict factory {factory!r} is not one of {sorted(FACTORIES)}")
            return [DEFAULTDICT, name, *self._pairs(obj)]
        if t is Counter:
            return [COUNTER, *self._pairs(obj)]
        if t is OrderedDict:
            return [ODICT, *self._pairs(obj)]
        if t is np.ndarray:
            dtype = obj.dtype.str
            if dtype not in DTYPES:
                raise StateEncodeError(f"numpy dtype {dtype} is not one of {sorted(DTYPES)}")
            order = "F" if obj.flags.f_contiguous and not obj.flags.c_contiguous else "C"  # as pickle: BLAS
            return [NDARRAY, dtype, list(obj.shape), order, obj.tobytes(order)]  # results depend on the layout
        if isinstance(obj, np.generic):
            dtype = obj.dtype.str
            if dtype not in DTYPES:
                raise StateEncodeError(f"numpy scalar dtype {dtype} is not one of {sorted(DTYPES)}")
            return [NPSCALAR, dtype, obj.tobytes()]
        if t is datetime:
            return [DATETIME, obj.isoformat(), self.node(obj.tzinfo) if isinstance(obj.tzinfo, ZoneInfo) else None]
        if t is date:
            return [DATE, obj.toordinal()]
        if t is timedelta:
            return [TIMEDELTA, obj.days, obj.seconds, obj.microseconds]
        if t is ZoneInfo:
            return [ZONE, obj.key]
        if t is timezone:
            return [FIXED_ZONE, obj.utcoffset(None).total_seconds()]
        if t is NormalDist:
            return [NORMAL, obj.mean, obj.stdev]
        if t is random.Random:
            return [RANDOM, self.node(obj.getstate())]
        if t is self.vectordict:
            data, factory, mask, _ = obj.__reduce__()[1]
            return [VECTORDICT, self.node(data), self.node(factory), self.node(mask)]
        if t is self.adwin:
            return [ADWIN, list(obj.__getnewargs__()), obj.__getstate__()]
        if t is FunctionType and f"{obj.__module__}:{obj.__qualname__}" in FUNCTIONS:
            return [FUNCTION, f"{obj.__module__}:{obj.__qualname__}"]
        if not _allowed(t.__module__, self.allowed) or "<locals>" in t.__qualname__:
            raise StateEncodeError(f"{t.__module__}.{t.__qualname__} is not a type the state format holds "
                                   f"(modules under {', '.join(self.allowed)} or the kinds in statecodec)")
        name, kind = _class_name(t), _kind_of(t)
        if kind == ENUM:
            return [ENUM, name, self.node(obj.value)]
        if kind == MODEL:
            return [MODEL, name, self.node(obj.model_dump())]
        if kind == NAMEDTUPLE:
            return [NAMEDTUPLE, name, *self._items(obj, ".{}")]
        if kind is None:
            raise StateEncodeError(f"{name} has a custom __new__ or a builtin base: not rebuildable")
        return [OBJECT, name, *self._attrs(obj, t)]

    def _attrs(self, obj: Any, t: type) -> list[Any]:
        attrs = {slot: getattr(obj, slot) for slot in _slots(t) if hasattr(obj, slot)}
        attrs.update(getattr(obj, "__dict__", {}))
        out: list[Any] = []
        for k, v in attrs.items():
            try:
                out += [k, v if type(v) in PLAIN else self.node(v)]
            except StateEncodeError as exc:
                exc.path.insert(0, f".{k}")
                raise
        return out


@functools.cache
def _slots(cls: type) -> tuple[str, ...]:
    """The slot names of ``cls`` and its bases."""
    return tuple(slot for c in cls.__mro__ for slot in c.__dict__.get("__slots__", ())
                 if slot not in ("__dict__", "__weakref__"))


@functools.cache
def _kind_of(cls: type) -> int | None:
    """How instances of an allowed class are written and rebuilt; None: they cannot be (a custom ``__new__`` or a
    builtin base other than ``object``, whose instances need that type's ``__new__``)."""
    if issubclass(cls, enum.Enum):
        return ENUM
    if issubclass(cls, BaseModel):
        return MODEL
    if issubclass(cls, tuple) and type(getattr(cls, "_fields", None)) is tuple:
        return NAMEDTUPLE
    if cls.__new__ is not object.__new__ or any(b.__module__ == "builtins" and b is not object for b in cls.__mro__):
        return None
    return OBJECT


class _Decoder:
    PENDING = object()

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = allowed
        self.objects: list[Any] = []
        self.classes: dict[str, type] = {}
        self.names: set[str] = set()  # attribute names checked

    def value(self, node: Any) -> Any:
        t = type(node)
        if t in SCALARS:
            return node
        if t is not list or not node or type(node[0]) is not int:
            raise ValueError(f"malformed node {str(node)[:60]}")
        kind = node[0]
        if kind == REF:
            obj = self.objects[_index(node[1], len(self.objects))]
            if obj is self.PENDING:
                raise ValueError("reference to an object not finished: a cycle")
            return obj
        number = len(self.objects)
        self.objects.append(self.PENDING)
        obj = self._build(kind, node)
        self.objects[number] = obj
        return obj

    def _all(self, nodes: list[Any]) -> list[Any]:
        return [n if type(n) in PLAIN else self.value(n) for n in nodes]

    def _pairs(self, nodes: list[Any]) -> Iterable[tuple[Any, Any]]:
        if len(nodes) % 2:
            raise ValueError("odd number of items in a mapping")
        for i in range(0, len(nodes), 2):
            k, v = nodes[i], nodes[i + 1]
            yield k if type(k) in PLAIN else self.value(k), v if type(v) in PLAIN else self.value(v)

    def _build(self, kind: int, node: list[Any]) -> Any:
        rest = node[1:]
        if kind == LIST:
            return self._all(rest)
        if kind == TUPLE:
            return tuple(self._all(rest))
        if kind == DICT:
            return dict(self._pairs(rest))
        if kind == SET:
            return set(self._all(rest))
        if kind == FROZENSET:
            return frozenset(self._all(rest))
        if kind == DEQUE:
            maxlen = rest[0]
            if maxlen is not None and type(maxlen) is not int:
                raise ValueError("deque maxlen")
            return deque(self._all(rest[1:]), maxlen)
        if kind == DEFAULTDICT:
            factory = None if rest[0] is None else FACTORIES[rest[0]]
            return defaultdict(factory, self._pairs(rest[1:]))
        if kind == COUNTER:
            return Counter(dict(self._pairs(rest)))
        if kind == ODICT:
            return OrderedDict(self._pairs(rest))
        if kind == NDARRAY:
            dtype, shape, order, raw = rest
            if dtype not in DTYPES or type(raw) is not bytes or type(shape) is not list or order not in ("C", "F"):
                raise ValueError("ndarray dtype, shape, order or data")
            if not all(type(n) is int and n >= 0 for n in shape):
                raise ValueError("ndarray shape")
            return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape, order=order).copy(order="K")
        if kind == NPSCALAR:
            dtype, raw = rest
            if dtype not in DTYPES or type(raw) is not bytes:
                raise ValueError("numpy scalar dtype or data")
            return np.frombuffer(raw, dtype=np.dtype(dtype), count=1)[0]
        if kind == DATETIME:
            text, zone = rest
            dt = datetime.fromisoformat(_text(text))
            zone = None if zone is None else self.value(zone)
            if zone is not None and not isinstance(zone, ZoneInfo):
                raise ValueError("datetime zone")
            return dt if zone is None else dt.replace(tzinfo=zone)
        if kind == DATE:
            return date.fromordinal(_int(rest[0]))
        if kind == TIMEDELTA:
            return timedelta(days=_int(rest[0]), seconds=_int(rest[1]), microseconds=_int(rest[2]))
        if kind == ZONE:
            return ZoneInfo(_text(rest[0]))
        if kind == FIXED_ZONE:
            seconds = rest[0]
            if type(seconds) is not float:
                raise ValueError("fixed zone offset")
            return timezone(timedelta(seconds=seconds))
        if kind == NORMAL:
            if type(rest[0]) is not float or type(rest[1]) is not float:
                raise ValueError("NormalDist parameters")
            return NormalDist(rest[0], rest[1])
        if kind == RANDOM:
            rng = random.Random()
            rng.setstate(self.value(rest[0]))
            return rng
        if kind == VECTORDICT:
            cls = _vectordict_type()
            data, factory, mask = (self.value(n) for n in rest)
            if type(data) is not dict or (factory is not None and not self._allowed_instance(factory)):
                raise ValueError("VectorDict data or default factory")
            if mask is not None and not isinstance(mask, set | cls):
                raise ValueError("VectorDict mask")
            return cls(data, factory, mask, True)
        if kind == ADWIN:
            cls = _adwin_type()
            args, state = rest
            if type(args) is not list or type(state) is not bytes:
                raise ValueError("AdaptiveWindowing")
            if not all(type(a) in (int, float) for a in args):
                raise ValueError("AdaptiveWindowing arguments")
            obj: Any = cls.__new__(cls, *args)
            obj.__setstate__(state)
            return obj
        if kind == FUNCTION:
            if rest[0] not in FUNCTIONS:
                raise ValueError(f"function {str(rest[0])[:80]!r} is not one a state may refer to")
            owner, _, attr = rest[0].rpartition(".")
            return getattr(self._class(owner), attr)
        if kind in (ENUM, MODEL, NAMEDTUPLE, OBJECT):
            return self._instance(kind, self._class(rest[0]), rest[1:])
        raise ValueError(f"unknown node kind {kind}")

    def _instance(self, kind: int, cls: Any, rest: list[Any]) -> Any:
        if _kind_of(cls) != kind:
            raise ValueError(f"{cls.__qualname__} is not rebuilt as node kind {kind}")
        if kind == ENUM:
            return cls._value2member_map_[self.value(rest[0])]
        if kind == MODEL:
            return cls.model_validate(self.value(rest[0]))
        if kind == NAMEDTUPLE:
            if len(cls._fields) != len(rest):
                raise ValueError(f"{cls.__qualname__} is not a named tuple of {len(rest)} fields")
            return tuple.__new__(cls, self._all(rest))
        obj = object.__new__(cls)
        if len(rest) % 2:
            raise ValueError("odd number of attribute items")
        for i in range(0, len(rest), 2):
            name, v = rest[i], rest[i + 1]
            if name not in self.names:
                if not NAME.fullmatch(_text(name)) or name.startswith("__"):
                    raise ValueError(f"attribute name {name[:60]!r}")
                self.names.add(name)
            object.__setattr__(obj, name, v if type(v) in PLAIN else self.value(v))
        return obj

    def _class(self, name: Any) -> type:
        """The class ``module:qualname``, only if it is defined in an allowed module."""
        cls = self.classes.get(name) if type(name) is str else None
        if cls is not None:
            return cls
        module, _, qualname = _text(name).partition(":")
        parts = qualname.split(".")
        if not _allowed(module, self.allowed) or not all(NAME.fullmatch(p) and not p.startswith("__")
                                                         for p in module.split(".")):  # no __main__
            raise ValueError(f"class {name[:80]!r} is not in an allowed module ({', '.join(self.allowed)})")
        if not all(NAME.fullmatch(p) and not p.startswith("__") for p in parts):
            raise ValueError(f"class name {name[:80]!r}")
        found: Any = importlib.import_module(module)
        for part in parts:
            found = getattr(found, part)
            if not isinstance(found, type):
                raise ValueError(f"{name[:80]!r} is not a class")
        if found.__module__ != module or found.__qualname__ != qualname:
            raise ValueError(f"{name[:80]!r} is defined in {found.__module__}, not in {module}")
        self.classes[name] = found
        return found

    def _allowed_instance(self, obj: Any) -> bool:
        t = type(obj)
        return _allowed(t.__module__, self.allowed)


def _index(n: Any, size: int) -> int:
    if type(n) is not int or not 0 <= n < size:
        raise ValueError(f"reference {n!r} out of range")
    return n


def _int(n: Any) -> int:
    if type(n) is not int:
        raise ValueError(f"expected an int, got {type(n).__name__}")
    return n


def _text(s: Any) -> str:
    if type(s) is not str:
        raise ValueError(f"expected a str, got {type(s).__name__}")
    return s
