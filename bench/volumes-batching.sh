#!/usr/bin/env bash
# Runs the simulator batching benchmark (agent/volumes BenchmarkActivate100)
# and prints batched vs sequential ns/op with their ratio per latency.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
go test ./agent/volumes/ -run '^$' -bench 'BenchmarkActivate100' -benchtime="${BENCHTIME:-3x}" |
	tee /dev/stderr |
	awk '/^BenchmarkActivate100\// {
		split($1, p, "/"); lat = p[2]; style = p[3]; sub(/-[0-9]+$/, "", style)
		ns[lat, style] = $3; calls[lat, style] = $5; lats[lat] = 1
	}
	END {
		printf "\n%-16s %14s %14s %8s %18s\n", "latency", "batched ms", "sequential ms", "ratio", "lvchange b/s"
		for (l in lats)
			printf "%-16s %14.1f %14.1f %7.1fx %9s/%-8s\n", l, ns[l, "batched"] / 1e6, ns[l, "sequential"] / 1e6,
				ns[l, "sequential"] / ns[l, "batched"], calls[l, "batched"], calls[l, "sequential"]
	}'
