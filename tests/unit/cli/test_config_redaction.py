"""Secrets (SASL password, InfluxDB token) are redacted in ``evgrid config show``, in ``repr``/``str``/JSON
dumps of the settings and of the faust credentials, and never reach a log record of the InfluxDB sink, while
the clients still receive the real values."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from streams.cli import app
from streams.settings import Settings

SASL_PASSWORD = "sasl-Pw-3f9c1e77"
INFLUX_TOKEN = "influx-Tok-8a2d55b0"
MASK = "**********"


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVGRID_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("EVGRID_SASL_USERNAME", "evgrid-worker")
    monkeypatch.setenv("EVGRID_SASL_PASSWORD", SASL_PASSWORD)
    monkeypatch.setenv("EVGRID_INFLUX_TOKEN", INFLUX_TOKEN)


def test_config_show_redacts_secrets_from_the_environment(secret_env: None) -> None:
    result = CliRunner().invoke(app, ["config", "show"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert shown["sasl_password"]["value"] == MASK
    assert shown["influx_token"]["value"] == MASK
    assert shown["sasl_password"]["env"] == "EVGRID_SASL_PASSWORD"
    # the non-secret settings from the same environment are shown as they are
    assert shown["security_protocol"]["value"] == "SASL_SSL"
    assert shown["sasl_username"]["value"] == "evgrid-worker"
    assert SASL_PASSWORD not in result.output and INFLUX_TOKEN not in result.output


def test_unset_secrets_are_shown_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVGRID_SASL_PASSWORD", raising=False)
    monkeypatch.delenv("EVGRID_INFLUX_TOKEN", raising=False)
    shown = json.loads(CliRunner().invoke(app, ["config", "show"]).output)
    assert shown["sasl_password"]["value"] is None
    assert shown["influx_token"]["value"] == ""  # empty SecretStr: nothing to hide


def test_settings_repr_str_and_dumps_hide_secrets(secret_env: None) -> None:
    s = Settings()
    assert s.sasl_password is not None
    assert s.sasl_password.get_secret_value() == SASL_PASSWORD  # the value is there for the clients...
    assert s.influx_token.get_secret_value() == INFLUX_TOKEN
    for text in (repr(s), str(s), s.model_dump_json(), json.dumps(s.model_dump(mode="json")), f"{s!r}"):
        assert SASL_PASSWORD not in text and INFLUX_TOKEN not in text  # ...but never in its text forms
    assert s.model_dump(mode="json")["sasl_password"] == MASK


def test_kafka_clients_receive_the_password_but_faust_credentials_hide_it(secret_env: None) -> None:
    from streams.kafka.clients import client_config
    from streams.kafka.config import KafkaConnection

    s = Settings()
    conf = client_config(s)
    assert conf["sasl.password"] == SASL_PASSWORD and conf["sasl.username"] == "evgrid-worker"
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    creds = KafkaConnection.from_settings(s).faust_credentials()
    assert creds.password == SASL_PASSWORD
    assert SASL_PASSWORD not in repr(creds) and SASL_PASSWORD not in str(creds)
    connection = KafkaConnection.from_settings(s)
    assert connection.sasl_password == SASL_PASSWORD and SASL_PASSWORD not in repr(connection)


class _Unauthorized(BaseHTTPRequestHandler):
    """An InfluxDB that refuses every write with 401 (wrong token) and remembers the Authorization header."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.seen.append(self.headers.get("Authorization", ""))
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"code":"unauthorized","message":"unauthorized access"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_influx() -> Iterator[str]:
    _Unauthorized.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_influx_token_is_sent_but_never_logged(secret_env: None, refusing_influx: str,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from streams.sinks.influx import InfluxSink

    caplog.set_level(logging.DEBUG)
    sink = InfluxSink.from_settings(Settings(influx_url=refusing_influx, influx_flush_seconds=0.05,
                                             influx_stats_seconds=3600.0))
    try:
        sink.write(["m,feeder=F1 v=1 1700000000000"])
        assert not sink.flush(1.5), "a 401 is not a successful write"
    finally:
        sink.close(timeout=0.5)
    assert _Unauthorized.seen and all(INFLUX_TOKEN in h for h in _Unauthorized.seen), "the token must be sent"
    logged = "\n".join(r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "") for r in caplog.records)
    assert "401" in logged or "unauthorized" in logged.lower(), f"the refusal should be logged: {logged!r}"
    assert INFLUX_TOKEN not in logged and INFLUX_TOKEN not in caplog.text


@pytest.mark.parametrize("protocol", ["sasl_ssl", "SASL_SSL", "Sasl_Ssl"])
def test_faust_credentials_accept_any_case_of_the_protocol(protocol: str) -> None:
    from faust.types.auth import AuthProtocol

    from streams.kafka.config import KafkaConnection

    def faust_credentials(settings: Settings) -> Any:
        return KafkaConnection.from_settings(settings).faust_credentials()

    creds = faust_credentials(Settings(security_protocol=protocol, sasl_username="u",
                                       sasl_password=SecretStr(SASL_PASSWORD)))
    assert creds.protocol == AuthProtocol.SASL_SSL and creds.ssl_context is not None
    assert faust_credentials(Settings(security_protocol="plaintext")) is None
    with pytest.raises(ValueError, match="EVGRID_SECURITY_PROTOCOL"):
        faust_credentials(Settings(security_protocol="TLS"))
