#!/usr/bin/env bash
# bash infra/up.sh [kafka|influxdb|all] — see infra/services.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/services.sh" up "${1:-all}"
