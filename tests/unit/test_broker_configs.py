"""Every broker config the project ships: no anonymous super user, no plaintext next to an authorizer,
authenticated controller and inter-broker listeners, and a development profile that is loopback only with no
ACLs to bypass. Also: infra/services.sh renders a config owner-only with the values substituted in the shell."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "infra" / "kafka").glob("*.properties"))
TEMPLATES = [t for t in TEMPLATES if t.name != "log4j.properties"]


def props(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def compose_kafka_env() -> dict[str, str]:
    text = (ROOT / "infra" / "docker-compose.yml").read_text()
    block = text.split("\n  kafka:\n", 1)[1].split("\n  influxdb:", 1)[0]
    return {m[0]: m[1].strip().strip('"') for m in re.findall(r"^\s+KAFKA_([A-Z_]+):\s*(.*)$", block, re.M)}


def as_props(env: dict[str, str]) -> dict[str, str]:
    return {k.lower().replace("_", "."): v for k, v in env.items()}


CONFIGS = {t.name: props(t) for t in TEMPLATES} | {"docker-compose.yml": as_props(compose_kafka_env())}


def test_both_templates_and_compose_are_checked() -> None:
    assert {"server.properties", "server-sasl-ssl.properties", "docker-compose.yml"} <= set(CONFIGS)
    assert all("listeners" in c and "listener.security.protocol.map" in c for c in CONFIGS.values())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_no_anonymous_super_user_and_no_plaintext_with_an_authorizer(name: str) -> None:
    c = CONFIGS[name]
    assert "ANONYMOUS" not in c.get("super.users", "")
    protocols = dict(item.split(":", 1) for item in c["listener.security.protocol.map"].split(","))
    listeners = [item.split("://", 1) for item in c["listeners"].split(",")]
    if "authorizer.class.name" in c:
        assert set(protocols.values()) <= {"SSL", "SASL_SSL"}, protocols
        assert c.get("allow.everyone.if.no.acl.found", "false") == "false"
        for role in (c["controller.listener.names"], c["inter.broker.listener.name"]):
            assert protocols[role] in ("SSL", "SASL_SSL"), role
        supers = [s for s in c.get("super.users", "").split(";") if s]
        # super users are full DNs (CN=…,OU=…,O=…) given at render time, never a bare name a CN could claim
        assert supers == ["@@SUPER_USERS@@"] or (
            supers and all(re.fullmatch(r"User:CN=[^,]+(,[A-Z]+=[^,;]+)+", s) for s in supers)), supers
    else:
        # the development profile: nothing authorizes, so nothing can be bypassed; loopback only
        assert not any(k in c for k in ("super.users", "allow.everyone.if.no.acl.found")), name
        for _, addr in listeners:
            assert addr.startswith(("127.0.0.1:", "localhost:")) or name == "docker-compose.yml", addr


def test_compose_publishes_the_dev_broker_on_loopback_only() -> None:
    text = (ROOT / "infra" / "docker-compose.yml").read_text()
    ports = re.findall(r'^\s+- "([^"]+:9092)"$', text, re.M)
    assert ports == ["127.0.0.1:9092:9092"]


def test_secured_template_client_listener_maps_only_the_client_dn_form() -> None:
    c = CONFIGS["server-sasl-ssl.properties"]
    rule = c["listener.name.ssl.ssl.principal.mapping.rules"]
    assert "DEFAULT" not in rule and rule.startswith("RULE:^CN=") and "OU=evgrid-clients" in rule
    assert c["listener.name.ssl.ssl.truststore.location"] != c["ssl.truststore.location"]  # client CA != infra CA


def test_render_substitutes_in_the_shell_into_an_owner_only_file(tmp_path: Path) -> None:
    """``render`` of infra/services.sh: values with shell/sed metacharacters land verbatim, mode 0600
    whatever the caller's umask, and no external command is given a value (it uses bash builtins only)."""
    tmpl = tmp_path / "t.properties"
    tmpl.write_text("a=@@A@@\nb=@@B@@\n# @@NOT_A_VAR@@ in a comment\n")
    func = re.search(r"^render\(\) \{.*?^\}", (ROOT / "infra" / "services.sh").read_text(), re.S | re.M)
    assert func is not None
    secret = r"s3cr&t|\1$(id)`x`"
    script = f'die() {{ echo "$*" >&2; exit 1; }}\n{func.group(0)}\numask 022\nrender "$1" "$2" "A=$3" "B=plain"\n'
    out = tmp_path / "out.properties"
    # trace every command bash runs: the secret may only ever appear inside the shell's own expansions
    trace = tmp_path / "trace"
    proc = subprocess.run(["bash", "-c", f"exec 9>{trace}; BASH_XTRACEFD=9; set -x; {script}", "render",
                           str(tmpl), str(out), secret], capture_output=True, text=True, check=False,
                          env={**os.environ, "PS4": "+ "})
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == f"a={secret}\nb=plain\n# @@NOT_A_VAR@@ in a comment\n"
    assert out.stat().st_mode & 0o777 == 0o600
    external = [line for line in trace.read_text().splitlines()
                if re.match(r"\++ (sed|awk|perl|python3?|cat|tee|cp|install|chmod) ", line)]
    assert not any("s3cr" in line for line in external), external


def test_services_refuses_a_config_with_an_anonymous_super_user(tmp_path: Path) -> None:
    """``infra/services.sh up kafka`` stops before starting Java when a template makes ANONYMOUS a super user."""
    import socket

    tmpl = tmp_path / "bad.properties"
    tmpl.write_text((ROOT / "infra" / "kafka" / "server.properties").read_text() + "super.users=User:ANONYMOUS\n")
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "kafka_2.13-0.jar").write_bytes(b"")  # never run: the check comes first
    with socket.socket() as a, socket.socket() as b:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        ports = a.getsockname()[1], b.getsockname()[1]
    env = {**os.environ, "EVGRID_KAFKA_TEMPLATE": str(tmpl), "EVGRID_KAFKA_RUN_DIR": str(tmp_path / "run"),
           "EVGRID_KAFKA_LIB": str(lib), "EVGRID_KAFKA_PORT": str(ports[0]),
           "EVGRID_KAFKA_CONTROLLER_PORT": str(ports[1])}
    proc = subprocess.run(["bash", str(ROOT / "infra" / "services.sh"), "up", "kafka"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0
    assert "makes User:ANONYMOUS a super user; refusing to start" in proc.stderr
    assert not (tmp_path / "run" / "kafka.pid").exists()
