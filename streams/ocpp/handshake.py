"""Websocket handshake helpers: the station id in the path, HTTP basic auth, the TLS client certificate's CN,
and the server TLS context of security profiles 2 and 3."""

from __future__ import annotations

import base64
import binascii
import ssl
from urllib.parse import unquote

from websockets.asyncio.server import ServerConnection

__all__ = ["basic_auth", "peer_cn", "server_ssl_context", "station_id_of"]


def station_id_of(path: str) -> str:
    """The last segment of the request path (URL-decoded), without the query."""
    return unquote(path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1])


def basic_auth(header: str | None) -> tuple[str | None, str | None]:
    """``(user, password)`` of an ``Authorization: Basic`` header, ``(None, None)`` when absent or malformed."""
    if not header or not header.lower().startswith("basic "):
        return None, None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    return user, password


def peer_cn(conn: ServerConnection) -> str | None:
    """Subject CN of the verified client certificate, if any."""
    sslobj = conn.transport.get_extra_info("ssl_object")
    cert = sslobj.getpeercert() if sslobj is not None else None
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def server_ssl_context(certfile: str, keyfile: str, cafile: str | None, require_client_cert: bool) -> ssl.SSLContext:
    """TLS 1.2+ server context; with ``require_client_cert`` (profile 3) clients need a cert signed by ``cafile``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    if require_client_cert:
        if not cafile:
            raise ValueError("security profile 3 needs the CA that signs station certificates")
        ctx.load_verify_locations(cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx
