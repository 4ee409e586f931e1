#!/usr/bin/env bash
# evgrid local services: Apache Kafka 3.9 (KRaft, single node) and InfluxDB 1.8, no Docker.
#
#   bash infra/services.sh up|down|restart|status [kafka|influxdb|all]   (default: all)
#
# Runtime state lives under <repo>/.run/ (git-ignored):
#   .run/kafka/{server.properties,data/,logs/,kafka.pid}
#   .run/influxdb/{influxdb.conf,meta/,data/,wal/,logs/,influxd.pid}
#
# Every port/dir is overridable, which is how tests run a *private* broker next to the shared one:
#   EVGRID_RUN_DIR                 base run dir                  (<repo>/.run)
#   EVGRID_KAFKA_PORT              PLAINTEXT listener            (9092)
#   EVGRID_KAFKA_CONTROLLER_PORT   KRaft controller listener     (9093)
#   EVGRID_KAFKA_RUN_DIR           this broker's dir             ($EVGRID_RUN_DIR/kafka)
#   EVGRID_KAFKA_HEAP_OPTS         JVM heap                      (-Xms256m -Xmx1G)
#   EVGRID_KAFKA_CLUSTER_ID        cluster id used by the first format (random)
#   EVGRID_KAFKA_SESSION_TIMEOUT_MS / EVGRID_KAFKA_HEARTBEAT_INTERVAL_MS  (9000 / 2000)
#   EVGRID_KAFKA_TEMPLATE          server.properties template    (infra/kafka/server.properties)
#   EVGRID_KAFKA_VAR_<NAME>        extra @@NAME@@ placeholder values for that template
#                                  (e.g. infra/kafka/server-sasl-ssl.properties needs INTERNAL_PORT, ...;
#                                  values are substituted in the shell, never on a command line)
#   EVGRID_KAFKA_SCRAM             SCRAM credentials created when storage is first formatted, one per line:
#                                  SCRAM-SHA-512=[name=evgrid,password=secret]  (kafka-storage --add-scram,
#                                  passed in an owner-only java @argfile)
#   EVGRID_INFLUX_PORT             HTTP API                      (8086)
#   EVGRID_INFLUX_RPC_PORT         backup/restore RPC            (8088)
#   EVGRID_INFLUX_RUN_DIR          this influxd's dir            ($EVGRID_RUN_DIR/influxdb)
#   EVGRID_INFLUX_DB               database created on up        (evgrid)
#   EVGRID_START_TIMEOUT / EVGRID_STOP_TIMEOUT   seconds         (120 / 30)
#
# `up` is idempotent (a running instance, identified by pid file + its command line, is reused);
# `down` only ever signals the process recorded in the pid file, and only if it is ours.
# `status` exits 0 when every requested service is up and ready, 3 otherwise.
# Output lines of `status` are machine-readable: "<service> <state> pid=<pid|-> addr=<host:port>".
# shellcheck disable=SC2317  # functions are dispatched indirectly ("$up", "$down", ...)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

abspath() { mkdir -p "$1" && (cd "$1" && pwd); }

RUN_BASE="${EVGRID_RUN_DIR:-$ROOT/.run}"
START_TIMEOUT="${EVGRID_START_TIMEOUT:-120}"
STOP_TIMEOUT="${EVGRID_STOP_TIMEOUT:-30}"

KAFKA_PORT="${EVGRID_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${EVGRID_KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_RUN="${EVGRID_KAFKA_RUN_DIR:-$RUN_BASE/kafka}"
KAFKA_LIB="${EVGRID_KAFKA_LIB:-$ROOT/infra/kafka/lib}"
KAFKA_HEAP_OPTS="${EVGRID_KAFKA_HEAP_OPTS:--Xms256m -Xmx1G}"
KAFKA_SESSION_TIMEOUT_MS="${EVGRID_KAFKA_SESSION_TIMEOUT_MS:-9000}"
KAFKA_HEARTBEAT_INTERVAL_MS="${EVGRID_KAFKA_HEARTBEAT_INTERVAL_MS:-2000}"
KAFKA_TEMPLATE="${EVGRID_KAFKA_TEMPLATE:-$ROOT/infra/kafka/server.properties}"

INFLUX_PORT="${EVGRID_INFLUX_PORT:-8086}"
INFLUX_RPC_PORT="${EVGRID_INFLUX_RPC_PORT:-8088}"
INFLUX_RUN="${EVGRID_INFLUX_RUN_DIR:-$RUN_BASE/influxdb}"
INFLUXD="${EVGRID_INFLUXD:-$ROOT/infra/influxdb/bin/influxd}"
INFLUX_DB="${EVGRID_INFLUX_DB:-evgrid}"

log() { printf '%s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- process helpers

# alive PID: the process still has a thread that is not a zombie (a SIGKILLed JVM shows a zombie
# group leader while its other threads are still being torn down and its sockets are still open)
alive() {
    local pid="$1" stat f
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    for f in /proc/"$pid"/task/*/stat; do
        stat="$(cat "$f" 2>/dev/null)" || continue
        stat="${stat##*) }"
        [[ "${stat:0:1}" != "Z" && "${stat:0:1}" != "X" ]] && return 0
    done
    return 1
}

# ours PIDFILE MARKER: print the pid recorded in PIDFILE if that process is alive and its
# command line contains MARKER (the absolute path of the config file we rendered for it).
ours() {
    local pidfile="$1" marker="$2" pid cmd
    [[ -s "$pidfile" ]] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    alive "$pid" || return 1
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmd" == *"$marker"* ]] || return 1
    printf '%s\n' "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_busy PORT: open now and still open after a grace period (a process that was just
# killed may take a moment to release its listener)
port_busy() {
    local i
    for ((i = 0; i < 50; i++)); do
        port_open "$1" || return 1
        sleep 0.2
    done
}

# launch PIDFILE LOGFILE CMD...: start CMD in its own session, detached from this shell,
# and record its pid (the exec'd command keeps the pid written by the wrapper shell).
launch() {
    local pidfile="$1" logfile="$2"
    shift 2
    rm -f "$pidfile"
    # shellcheck disable=SC2016  # expanded by the inner bash
    setsid bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    local i
    for ((i = 0; i < 100; i++)); do
        [[ -s "$pidfile" ]] && return 0
        sleep 0.05
    done
    die "process did not record its pid in $pidfile"
}

# stop NAME PIDFILE MARKER
stop_pid() {
    local name="$1" pidfile="$2" marker="$3" pid i
    if ! pid="$(ours "$pidfile" "$marker")"; then
        if [[ -e "$pidfile" ]]; then
            rm -f "$pidfile"
            log "$name: not running (removed stale pid file)"
        else
            log "$name: not running"
        fi
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        log "$name: pid $pid ignored SIGTERM for ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 100; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

# render TEMPLATE OUT KEY=VALUE...: replace @@KEY@@ placeholders. Values may be secrets (keystore
# password): the substitution runs inside this shell (no sed/awk argv for `ps` to show) and the file is
# created owner-only (umask 077) before anything is written to it.
render() {
    local tmpl="$1" out="$2" line kv key val
    shift 2
    (
        umask 077
        rm -f "$out.tmp"
        while IFS= read -r line || [[ -n "$line" ]]; do
            for kv in "$@"; do
                key="${kv%%=*}" val="${kv#*=}"
                line="${line//"@@$key@@"/"$val"}"
            done
            printf '%s\n' "$line"
        done <"$tmpl" >"$out.tmp"
    )
    if grep -v '^ *#' "$out.tmp" | grep -q '@@[A-Z_]*@@'; then
        die "unrendered placeholder in $out: $(grep -o '@@[A-Z_]*@@' "$out.tmp" | sort -u | tr '\n' ' ')"
    fi
    mv "$out.tmp" "$out"
}

with_lock() { # with_lock DIR CMD... — serialize concurrent up/down of one instance
    local dir="$1"
    shift
    mkdir -p "$dir"
    (
        flock -w "${EVGRID_LOCK_TIMEOUT:-900}" 9 || die "could not lock $dir/.lock"
        "$@"
    ) 9>"$dir/.lock"
}

# ---------------------------------------------------------------- kafka

kafka_init_paths() {
    KAFKA_RUN="$(abspath "$KAFKA_RUN")"
    KAFKA_CONF="$KAFKA_RUN/server.properties"
    KAFKA_PIDFILE="$KAFKA_RUN/kafka.pid"
    KAFKA_LOGS="$KAFKA_RUN/logs"
    KAFKA_DATA="$KAFKA_RUN/data"
}

# argfile_quote ARG...: one double-quoted java @argfile argument per line (\\ and \" escaped)
argfile_quote() {
    local a
    for a in "$@"; do
        a="${a//\\/\\\\}"
        printf '"%s"\n' "${a//\"/\\\"}"
    done
}

# a template whose KAFKA_PORT listener speaks TLS (SSL, SASL_SSL) is probed with ApiVersions over TLS
kafka_probe_args() {
    if grep -Eq '^listeners=(.*,)?[A-Z_]*SSL://[^,]*:@@KAFKA_PORT@@(,|$)' "$KAFKA_TEMPLATE"; then
        printf '%s\n' --tls
    fi
}

kafka_ready() {
    # shellcheck disable=SC2046  # zero or one flag
    "$PYTHON" "$ROOT/infra/kafka/probe.py" --quiet --timeout 2 $(kafka_probe_args) "127.0.0.1:$KAFKA_PORT"
}

kafka_java_opts() {
    # shellcheck disable=SC2206
    JAVA_OPTS=($KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
        "-Dlog4j.configuration=file:$ROOT/infra/kafka/log4j.properties" "-Dkafka.logs.dir=$KAFKA_LOGS")
}

kafka_up() {
    kafka_init_paths
    mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
    local pid
    if pid="$(ours "$KAFKA_PIDFILE" "$KAFKA_CONF")"; then
        kafka_wait_ready "$pid"
        log "kafka: already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    rm -f "$KAFKA_PIDFILE"
    if port_open "$KAFKA_PORT"; then
        if kafka_ready; then
            log "kafka: 127.0.0.1:$KAFKA_PORT is served by a broker not started from $KAFKA_RUN; leaving it alone"
            return 0
        fi
        port_busy "$KAFKA_PORT" && die "kafka: port $KAFKA_PORT is in use by another process"
    fi
    port_busy "$KAFKA_CONTROLLER_PORT" && die "kafka: controller port $KAFKA_CONTROLLER_PORT is in use"
    if ! compgen -G "$KAFKA_LIB/kafka_2.13-*.jar" >/dev/null; then
        [[ -z "${EVGRID_KAFKA_LIB:-}" ]] || die "kafka jars missing in $KAFKA_LIB"
        log "kafka: jars missing, running infra/install.sh kafka"
        bash "$ROOT/infra/install.sh" kafka
    fi
    command -v java >/dev/null || die "java not found (Java 17 required)"

    local extra=() var
    for var in $(compgen -v EVGRID_KAFKA_VAR_ || true); do
        extra+=("${var#EVGRID_KAFKA_VAR_}=${!var}")
    done
    render "$KAFKA_TEMPLATE" "$KAFKA_CONF" \
        "KAFKA_PORT=$KAFKA_PORT" "KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT" "KAFKA_DATA_DIR=$KAFKA_DATA" \
        "KAFKA_SESSION_TIMEOUT_MS=$KAFKA_SESSION_TIMEOUT_MS" "KAFKA_HEARTBEAT_INTERVAL_MS=$KAFKA_HEARTBEAT_INTERVAL_MS" \
        ${extra[@]+"${extra[@]}"}
    # no config started from here may make the unauthenticated principal a super user
    if grep -Eq '^[[:space:]]*super\.users[[:space:]]*=.*ANONYMOUS' "$KAFKA_CONF"; then
        die "kafka: $KAFKA_CONF makes User:ANONYMOUS a super user; refusing to start"
    fi
    kafka_java_opts

    if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
        local cluster_id="${EVGRID_KAFKA_CLUSTER_ID:-}"
        if [[ -z "$cluster_id" ]]; then
            cluster_id="$("$PYTHON" -c 'import base64, uuid
while (c := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"): pass
print(c)')"
        fi
        log "kafka: formatting KRaft storage in $KAFKA_DATA (cluster id $cluster_id)"
        # the tool's arguments (SCRAM passwords) go in an owner-only java @argfile, not on the command line
        local args="$KAFKA_RUN/format.args" line
        (
            umask 077
            rm -f "$args"
            {
                printf '%s\n' kafka.tools.StorageTool format --ignore-formatted
                argfile_quote -t "$cluster_id" -c "$KAFKA_CONF"
                while IFS= read -r line; do
                    if [[ -n "$line" ]]; then argfile_quote --add-scram "$line"; fi
                done <<<"${EVGRID_KAFKA_SCRAM:-}"
            } >"$args"
        )
        java -Xmx256m "-Dlog4j.configuration=file:$ROOT/infra/kafka/log4j.properties" "-Dkafka.logs.dir=$KAFKA_LOGS" \
            -cp "$KAFKA_LIB/*" "@$args" >>"$KAFKA_LOGS/format.log" 2>&1 ||
            { rm -f "$args"; tail -n 20 "$KAFKA_LOGS/format.log" >&2; die "kafka: storage format failed (see $KAFKA_LOGS/format.log)"; }
        rm -f "$args"
    fi

    local t0=$SECONDS
    launch "$KAFKA_PIDFILE" "$KAFKA_LOGS/stdout.log" \
        java "${JAVA_OPTS[@]}" -cp "$KAFKA_LIB/*" kafka.Kafka "$KAFKA_CONF"
    pid="$(tr -dc '0-9' <"$KAFKA_PIDFILE")"
    kafka_wait_ready "$pid"
    log "kafka: started (pid $pid) on 127.0.0.1:$KAFKA_PORT in $((SECONDS - t0))s; logs in $KAFKA_LOGS"
}

kafka_wait_ready() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    until kafka_ready; do
        if ! alive "$pid"; then
            tail -n 30 "$KAFKA_LOGS/server.log" "$KAFKA_LOGS/stdout.log" >&2 2>/dev/null || true
            rm -f "$KAFKA_PIDFILE"
            die "kafka: broker (pid $pid) exited during startup (see $KAFKA_LOGS)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$KAFKA_LOGS/server.log" >&2 2>/dev/null || true
            die "kafka: not ready on 127.0.0.1:$KAFKA_PORT after ${START_TIMEOUT}s (pid $pid still running; see $KAFKA_LOGS)"
        fi
        sleep 0.5
    done
}

kafka_down() {
    kafka_init_paths
    stop_pid kafka "$KAFKA_PIDFILE" "$KAFKA_CONF"
}

kafka_status() {
    kafka_init_paths
    local pid
    if pid="$(ours "$KAFKA_PIDFILE" "$KAFKA_CONF")"; then
        if kafka_ready; then
            log "kafka running pid=$pid addr=127.0.0.1:$KAFKA_PORT"
            return 0
        fi
        log "kafka starting pid=$pid addr=127.0.0.1:$KAFKA_PORT"
        return 3
    fi
    if kafka_ready; then
        log "kafka external pid=- addr=127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    log "kafka stopped pid=- addr=127.0.0.1:$KAFKA_PORT"
    return 3
}

# ---------------------------------------------------------------- influxdb

influx_init_paths() {
    INFLUX_RUN="$(abspath "$INFLUX_RUN")"
    INFLUX_CONF="$INFLUX_RUN/influxdb.conf"
    INFLUX_PIDFILE="$INFLUX_RUN/influxd.pid"
    INFLUX_LOGS="$INFLUX_RUN/logs"
    INFLUX_URL="http://127.0.0.1:$INFLUX_PORT"
}

# http_code METHOD URL [curl args...]: print the HTTP status (000 when unreachable)
http_code() {
    local method="$1" url="$2"
    shift 2
    curl -s -o /dev/null -w '%{http_code}' --max-time 3 -X "$method" "$url" "$@" 2>/dev/null || true
}

influx_ready() { [[ "$(http_code GET "$INFLUX_URL/health")" == 200 ]]; }

influx_create_db() {
    local out
    out="$(curl -sS --max-time 10 -XPOST "$INFLUX_URL/query" --data-urlencode "q=CREATE DATABASE \"$INFLUX_DB\"")" ||
        die "influxdb: CREATE DATABASE $INFLUX_DB failed"
    [[ "$out" != *'"error"'* ]] || die "influxdb: CREATE DATABASE $INFLUX_DB: $out"
}

influx_up() {
    influx_init_paths
    mkdir -p "$INFLUX_RUN/meta" "$INFLUX_RUN/data" "$INFLUX_RUN/wal" "$INFLUX_LOGS"
    local pid
    if pid="$(ours "$INFLUX_PIDFILE" "$INFLUX_CONF")"; then
        influx_wait_ready "$pid"
        influx_create_db
        log "influxdb: already running (pid $pid) on $INFLUX_URL"
        return 0
    fi
    rm -f "$INFLUX_PIDFILE"
    if port_open "$INFLUX_PORT"; then
        if influx_ready; then
            influx_create_db
            log "influxdb: $INFLUX_URL is served by an influxd not started from $INFLUX_RUN; leaving it alone"
            return 0
        fi
        port_busy "$INFLUX_PORT" && die "influxdb: port $INFLUX_PORT is in use by another process"
    fi
    port_busy "$INFLUX_RPC_PORT" && die "influxdb: RPC port $INFLUX_RPC_PORT is in use"
    if [[ ! -x "$INFLUXD" ]]; then
        [[ -z "${EVGRID_INFLUXD:-}" ]] || die "influxd missing at $INFLUXD"
        log "influxdb: influxd missing, running infra/install.sh influxdb"
        bash "$ROOT/infra/install.sh" influxdb
    fi

    render "$ROOT/infra/influxdb/influxdb.conf" "$INFLUX_CONF" \
        "INFLUX_PORT=$INFLUX_PORT" "INFLUX_RPC_PORT=$INFLUX_RPC_PORT" "INFLUX_DIR=$INFLUX_RUN"

    local t0=$SECONDS
    launch "$INFLUX_PIDFILE" "$INFLUX_LOGS/influxd.log" "$INFLUXD" run -config "$INFLUX_CONF"
    pid="$(tr -dc '0-9' <"$INFLUX_PIDFILE")"
    influx_wait_ready "$pid"
    influx_create_db
    log "influxdb: started (pid $pid) on $INFLUX_URL in $((SECONDS - t0))s; database $INFLUX_DB (bucket $INFLUX_DB/autogen); logs in $INFLUX_LOGS"
}

influx_wait_ready() {
    local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
    until influx_ready; do
        if ! alive "$pid"; then
            tail -n 30 "$INFLUX_LOGS/influxd.log" >&2 2>/dev/null || true
            rm -f "$INFLUX_PIDFILE"
            die "influxdb: influxd (pid $pid) exited during startup (see $INFLUX_LOGS/influxd.log)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$INFLUX_LOGS/influxd.log" >&2 2>/dev/null || true
            die "influxdb: $INFLUX_URL/health not 200 after ${START_TIMEOUT}s (pid $pid)"
        fi
        sleep 0.2
    done
}

influx_down() {
    influx_init_paths
    stop_pid influxdb "$INFLUX_PIDFILE" "$INFLUX_CONF"
}

influx_status() {
    influx_init_paths
    local pid
    if pid="$(ours "$INFLUX_PIDFILE" "$INFLUX_CONF")"; then
        if influx_ready; then
            log "influxdb running pid=$pid addr=127.0.0.1:$INFLUX_PORT"
            return 0
        fi
        log "influxdb starting pid=$pid addr=127.0.0.1:$INFLUX_PORT"
        return 3
    fi
    if influx_ready; then
        log "influxdb external pid=- addr=127.0.0.1:$INFLUX_PORT"
        return 0
    fi
    log "influxdb stopped pid=- addr=127.0.0.1:$INFLUX_PORT"
    return 3
}

# ---------------------------------------------------------------- main

usage() {
    sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd="${1:-}"
target="${2:-all}"
case "$target" in
    all) services=(kafka influxdb) ;;
    kafka) services=(kafka) ;;
    influxdb | influx) services=(influxdb) ;;
    *) usage ;;
esac

rc=0
for svc in "${services[@]}"; do
    case "$svc" in
        kafka) dir="$KAFKA_RUN" up=kafka_up down=kafka_down st=kafka_status ;;
        influxdb) dir="$INFLUX_RUN" up=influx_up down=influx_down st=influx_status ;;
    esac
    case "$cmd" in
        up | start) with_lock "$dir" "$up" ;;
        down | stop) with_lock "$dir" "$down" ;;
        restart) with_lock "$dir" "$down" && with_lock "$dir" "$up" ;;
        status) "$st" || rc=$? ;;
        *) usage ;;
    esac
done
exit "$rc"
