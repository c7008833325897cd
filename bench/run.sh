#!/usr/bin/env bash
# Runs the whole side-by-side comparison and writes bench/RESULTS.md and
# bench/results.png: the micro benchmarks (-count 10, summarized with
# benchstat), then the load benchmark of every library (cmd/compare).
# Takes about 30-40 minutes on 2 cores. Extra arguments go to cmd/compare
# (e.g. -reps 1 -items 2000 for a quick look).
set -euo pipefail
cd "$(dirname "$0")"
go test -run '^$' -bench 'Success|ThreeFailures|HTTPSuccess' -benchmem -count 10 . | tee micro.txt
go tool benchstat micro.txt > micro-stat.txt
go run ./cmd/compare -micro micro-stat.txt "$@"
