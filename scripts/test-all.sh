#!/usr/bin/env bash
# Runs every test of every module. First installs what the tests need (the
# pinned dynalite, a DynamoDB-compatible server, with npm ci from the
# committed lockfile; Debian's redis-server), then runs go vet, staticcheck (a tool directive of
# tools/dev: no global install) and go test -race in each module of go.work,
# and last the release check (scripts/release-check.sh: every published
# module installs from a file proxy as a user would). Exits non-zero if
# anything fails.
#
# Set RETRY_REQUIRE_DYNALITE=1 (CI does) to make the dynalite tests fail
# rather than skip when node or dynalite is missing, and
# RETRY_REQUIRE_REDIS=1 for the redisretry tests and redis-server (which
# this script installs with apt-get when run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "=== apt-get install redis-server (the redisretry tests start it)"
		apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
	else
		echo "=== redis-server not found: the redisretry tests will skip (or fail if RETRY_REQUIRE_REDIS=1); install Debian's redis-server"
	fi
fi
if command -v npm >/dev/null 2>&1; then
	echo "=== npm ci (tools/dynalite)"
	(cd tools/dynalite && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
else
	echo "=== npm not found: the dynalite tests will skip (or fail if RETRY_REQUIRE_DYNALITE=1)"
fi

mapfile -t modules < <(go list -m -f '{{.Dir}}' | sed "s|^$PWD|.|")

status=0
for m in "${modules[@]}"; do
	echo "=== module $m"
	if ! (cd "$m" && go vet ./... && go tool staticcheck ./... && go test -race -count=1 -timeout 20m ./...); then
		status=1
	fi
done
# The scenario matrix's fixed-seed subset guards the adaptive limiter's
# distribution; under -race it runs only a few scenarios, so run it in full
# here without the race detector (about 10 s).
echo "=== scenario matrix subset (no -race)"
if ! go test -count=1 -run 'TestMatrixSubset' ./internal/sim/; then
	status=1
fi
# Separate client processes over real HTTP: under -race they share two
# cores at several times their CPU cost, so the tight attempt bound (1.2
# per write) is checked here, without the detector (about 6 s).
echo "=== separate client processes (no -race)"
if ! (cd retrytest && go test -count=1 -run 'TestMultiProcessLoad$' .); then
	status=1
fi
# Each fuzz target runs briefly: the seed corpus always runs with the tests;
# this explores beyond it (the Retry-After overflow was found this way).
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" as a failure at the deadline with no
# failing input (golang/go#75804, fixed in 1.27); CI hit it on 2026-11-29.
echo "=== fuzz targets (40,000 inputs each, a few seconds)"
while IFS=: read -r file name; do
	dir=$(dirname "$file")
	echo "--- $name ($dir)"
	if ! out=$(cd "$dir" && go test -run '^$' -fuzz "^$name\$" -fuzztime 40000x . 2>&1); then
		printf '%s\n' "$out" | tail -40 >&2
		echo "fuzz target $name failed (a failing input is saved under $dir/testdata/fuzz/$name)" >&2
		status=1
	fi
done < <(grep -rHo --include='*_test.go' --exclude-dir=node_modules '^func Fuzz[A-Za-z0-9_]*' . | sed 's/:func /:/')
# Figures in BENCHMARKS.md and README.md are command output
# (tools/dev/cmd/benchdoc): the deterministic ones must still match.
echo "=== generated figures match their commands"
if ! go run ./tools/dev/cmd/benchdoc -check BENCHMARKS.md README.md; then
	status=1
fi
echo "=== release check"
if ! scripts/release-check.sh; then
	status=1
fi
exit $status
