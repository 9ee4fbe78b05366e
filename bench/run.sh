#!/usr/bin/env bash
# Runs the comparison against the Redis at $STAMPEDE_REDIS_ADDR (default 127.0.0.1:6379), prints
# its markdown tables, and keeps a copy in bench/results/ (ignored by git). Progress goes to
# stderr. Arguments go to the program:
#
#   ./run.sh                                   # every scenario, the issue's parameters (~3 min)
#   ./run.sh -scenarios l1,l2 -count 5         # the hit paths only
#   ./run.sh -postgres 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable'
#   go run . -h                                # every flag
set -euo pipefail
cd "$(dirname "$0")"
export STAMPEDE_REDIS_ADDR="${STAMPEDE_REDIS_ADDR:-127.0.0.1:6379}"
mkdir -p results
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/bench" .
out="results/$(date -u +%Y%m%dT%H%M%SZ).md"
"$bin/bench" "$@" | tee "$out"
echo "bench: tables kept in bench/$out" >&2
