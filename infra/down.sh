#!/usr/bin/env bash
# bash infra/down.sh [kafka|influxdb|all] — see infra/services.sh
exec bash "$(dirname "${BASH_SOURCE[0]}")/services.sh" down "${1:-all}"
