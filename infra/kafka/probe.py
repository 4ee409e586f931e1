#!/usr/bin/env python3
"""Readiness probe for a Kafka broker, stdlib only (usable before `pip install`).

Sends one Metadata v4 request (supported by Kafka 1.0 … 4.x) and succeeds when the
broker answers with at least one live broker in the cluster.

With ``--tls`` (a secured listener: SSL or SASL_SSL, where Metadata needs authentication) it opens
TLS without a client identity and sends ApiVersions v0, which a broker answers before any SASL
exchange; it succeeds when the listener answers without error. The server certificate is not
verified: this only tells that the broker serves the port, clients check the certificate themselves.

    python3 infra/kafka/probe.py [HOST:PORT] [--timeout SECONDS] [--quiet] [--tls]

Exit status: 0 ready, 1 not ready / unreachable.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import struct
import sys

METADATA_API_KEY = 3
METADATA_VERSION = 4
API_VERSIONS_API_KEY = 18


def _read_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def int8(self) -> int:
        (v,) = struct.unpack_from(">b", self.data, self.pos)
        self.pos += 1
        return int(v)

    def int16(self) -> int:
        (v,) = struct.unpack_from(">h", self.data, self.pos)
        self.pos += 2
        return int(v)

    def int32(self) -> int:
        (v,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return int(v)

    def string(self) -> str | None:
        n = self.int16()
        if n < 0:
            return None
        s = self.data[self.pos : self.pos + n].decode("utf-8")
        self.pos += n
        return s


def metadata(host: str, port: int, timeout: float = 2.0) -> tuple[str | None, list[tuple[int, str, int]]]:
    """Return (cluster_id, [(node_id, host, port), ...]) from a Metadata v4 request."""
    client_id = b"evgrid-probe"
    correlation_id = 0x65766772
    header = struct.pack(">hhih", METADATA_API_KEY, METADATA_VERSION, correlation_id, len(client_id))
    body = struct.pack(">ib", 0, 0)  # topics: empty array (= none), allow_auto_topic_creation=false
    payload = header + client_id + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        resp = _Reader(_read_exact(sock, size))
    if resp.int32() != correlation_id:
        raise ConnectionError("unexpected correlation id")
    resp.int32()  # throttle_time_ms
    brokers = []
    for _ in range(resp.int32()):
        node_id = resp.int32()
        bhost = resp.string() or ""
        bport = resp.int32()
        resp.string()  # rack
        brokers.append((node_id, bhost, bport))
    cluster_id = resp.string()
    return cluster_id, brokers


def api_versions_tls(host: str, port: int, timeout: float = 2.0) -> int:
    """Error code of an ApiVersions v0 request over TLS (0 = the broker serves this listener)."""
    client_id = b"evgrid-probe"
    correlation_id = 0x65766773
    payload = struct.pack(">hhih", API_VERSIONS_API_KEY, 0, correlation_id, len(client_id)) + client_id
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # liveness only; no data is exchanged
    with (socket.create_connection((host, port), timeout=timeout) as raw,
          context.wrap_socket(raw, server_hostname=host) as sock):
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        (size,) = struct.unpack(">i", _read_exact(sock, 4))
        resp = _Reader(_read_exact(sock, size))
    if resp.int32() != correlation_id:
        raise ConnectionError("unexpected correlation id")
    return resp.int16()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bootstrap", nargs="?", default="127.0.0.1:9092")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--quiet", "-q", action="store_true")
    ap.add_argument("--tls", action="store_true", help="secured listener: ApiVersions over TLS")
    args = ap.parse_args(argv)
    host, _, port = args.bootstrap.rpartition(":")
    if args.tls:
        try:
            code = api_versions_tls(host or "127.0.0.1", int(port), args.timeout)
        except (OSError, ValueError, struct.error) as exc:
            code, why = -1, str(exc)
        else:
            why = f"ApiVersions error code {code}"
        if not args.quiet:
            print(f"kafka {args.bootstrap}: {'ready (tls)' if code == 0 else f'not ready ({why})'}",
                  file=sys.stdout if code == 0 else sys.stderr)
        return 0 if code == 0 else 1
    try:
        cluster_id, brokers = metadata(host or "127.0.0.1", int(port), args.timeout)
    except (OSError, ValueError, struct.error) as exc:
        if not args.quiet:
            print(f"kafka {args.bootstrap}: not ready ({exc})", file=sys.stderr)
        return 1
    if not brokers:
        if not args.quiet:
            print(f"kafka {args.bootstrap}: no live brokers yet", file=sys.stderr)
        return 1
    if not args.quiet:
        listed = ",".join(f"{n}@{h}:{p}" for n, h, p in brokers)
        print(f"kafka {args.bootstrap}: ready cluster_id={cluster_id} brokers={listed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
