#!/usr/bin/env bash
# bash infra/status.sh [kafka|influxdb|all] — see infra/services.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/services.sh" status "${1:-all}"
