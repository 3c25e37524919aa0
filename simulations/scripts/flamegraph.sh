#!/usr/bin/env bash
# Flamegraph of a running process, as checked in under docs/flamegraphs/ (BENCHMARKS.md).
# Needs perf (apt: linux-perf or linux-tools) and inferno (cargo install inferno).
# Release binaries keep their symbols; stacks are unwound from DWARF call frames.
#
#   simulations/scripts/flamegraph.sh PROCESS_NAME SECONDS OUT.svg "TITLE"
#
# e.g. while `fleet-sim bench open --server-process ...` runs:
#   simulations/scripts/flamegraph.sh fleet-server 6 docs/flamegraphs/server-open.svg "..."
set -euo pipefail
name=${1:?process name}; secs=${2:?seconds}; out=${3:?output svg}; title=${4:-$name}
pid=$(pgrep -x "$name" | head -1) || { echo "no process named $name is running" >&2; exit 1; }
data=$(mktemp /tmp/flamegraph.XXXXXX.data)
trap 'rm -f "$data"' EXIT
perf record -F 299 --call-graph dwarf,32768 -p "$pid" -o "$data" -- sleep "$secs" >/dev/null 2>&1
perf script -i "$data" 2>/dev/null | inferno-collapse-perf | inferno-flamegraph --title "$title" --minwidth 0.2 > "$out"
echo "$out: $(du -h "$out" | cut -f1)"
