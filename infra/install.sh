#!/usr/bin/env bash
# Fetch/build the service binaries evgrid runs without Docker (idempotent, cached per machine):
#   infra/kafka/lib/          Apache Kafka 3.9.2 jars   (Maven Central via infra/kafka/pom.xml)
#   infra/influxdb/bin/influxd InfluxDB 1.8.10 built from source (Go module proxy; 1.8.3 fallback)
# Both are cached under ${EVGRID_CACHE:-$HOME/.cache/evgrid} so a fresh clone on the same
# machine (e.g. CI) only copies them.  Needs: java 17 + mvn, go.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${EVGRID_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/evgrid}"
KAFKA_VERSION="3.9.2"
INFLUXDB_VERSIONS=(v1.8.10 v1.8.3) # first one that builds wins

KAFKA_LIB="$ROOT/infra/kafka/lib"
KAFKA_CACHE="$CACHE/kafka-$KAFKA_VERSION/lib"
INFLUXD="$ROOT/infra/influxdb/bin/influxd"

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

kafka_complete() { # DIR has the broker, tools and the logging binding
    [[ -f "$1/kafka_2.13-$KAFKA_VERSION.jar" && -f "$1/kafka-tools-$KAFKA_VERSION.jar" &&
        -f "$1/kafka-clients-$KAFKA_VERSION.jar" ]] && compgen -G "$1/reload4j-*.jar" >/dev/null
}

install_kafka() {
    if kafka_complete "$KAFKA_LIB"; then
        log "kafka $KAFKA_VERSION: jars present in infra/kafka/lib"
        return 0
    fi
    if ! kafka_complete "$KAFKA_CACHE"; then
        command -v mvn >/dev/null || die "mvn not found (needed once to fetch the Kafka jars)"
        log "kafka $KAFKA_VERSION: fetching jars with maven into $KAFKA_CACHE"
        rm -rf "$KAFKA_CACHE.tmp"
        mkdir -p "$KAFKA_CACHE.tmp"
        mvn -q -B -f "$ROOT/infra/kafka/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$KAFKA_CACHE.tmp" -Dmdep.overWriteReleases=true
        kafka_complete "$KAFKA_CACHE.tmp" || die "maven finished but Kafka jars are incomplete"
        rm -rf "$KAFKA_CACHE"
        mv "$KAFKA_CACHE.tmp" "$KAFKA_CACHE"
    fi
    rm -rf "$KAFKA_LIB"
    mkdir -p "$KAFKA_LIB"
    cp "$KAFKA_CACHE"/*.jar "$KAFKA_LIB"/
    log "kafka $KAFKA_VERSION: $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars in infra/kafka/lib"
}

install_influxd() {
    if [[ -x "$INFLUXD" ]] && "$INFLUXD" version >/dev/null 2>&1; then
        log "influxd: present at infra/influxdb/bin/influxd"
        return 0
    fi
    local v cached=""
    for v in "${INFLUXDB_VERSIONS[@]}"; do
        if [[ -x "$CACHE/influxd-${v#v}/influxd" ]]; then
            cached="$CACHE/influxd-${v#v}/influxd"
            break
        fi
    done
    if [[ -z "$cached" ]]; then
        command -v go >/dev/null || die "go not found (needed once to build influxd)"
        for v in "${INFLUXDB_VERSIONS[@]}"; do
            local dest="$CACHE/influxd-${v#v}"
            log "influxd $v: building from source into $dest (first time only, a few minutes)"
            rm -rf "$dest.tmp"
            mkdir -p "$dest.tmp"
            # main.version feeds /health, /ping and the X-Influxdb-Version header (clients read it)
            if GOBIN="$dest.tmp" go install -ldflags "-X main.version=${v#v} -X main.branch=$v -X main.commit=go-install" \
                "github.com/influxdata/influxdb/cmd/influxd@$v" && [[ -x "$dest.tmp/influxd" ]]; then
                rm -rf "$dest"
                mv "$dest.tmp" "$dest"
                cached="$dest/influxd"
                break
            fi
            rm -rf "$dest.tmp"
            log "influxd $v: build failed, trying the next version"
        done
        [[ -n "$cached" ]] || die "could not build influxd (${INFLUXDB_VERSIONS[*]})"
    fi
    mkdir -p "$(dirname "$INFLUXD")"
    rm -f "$INFLUXD"
    cp "$cached" "$INFLUXD"
    chmod +x "$INFLUXD"
    log "influxd: installed $cached -> infra/influxdb/bin/influxd"
}

check_tools() {
    command -v java >/dev/null || die "java not found (Java 17 runs the Kafka broker)"
    command -v curl >/dev/null || die "curl not found (used to probe/configure InfluxDB)"
    command -v flock >/dev/null || die "flock not found (util-linux)"
    command -v setsid >/dev/null || die "setsid not found (util-linux)"
}

t0=$SECONDS
check_tools
case "${1:-all}" in
    all) install_kafka && install_influxd ;;
    kafka) install_kafka ;;
    influxdb | influx) install_influxd ;;
    *) die "usage: bash infra/install.sh [all|kafka|influxdb]" ;;
esac
log "done in $((SECONDS - t0))s"
