#!/usr/bin/env bash
# Runs every test of every module: installs what the tests need, then
# go vet and go test -race in each module of go.work. Exits non-zero on any
# failure. Usage: scripts/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/.."

modules=(.)
[ -f go.work ] && mapfile -t modules < <(go list -m -f '{{.Dir}}' | sed "s|^$PWD|.|")

status=0
for m in "${modules[@]}"; do
	echo "=== module $m"
	if ! (cd "$m" && go vet ./... && go test -race -count=1 ./...); then
		status=1
	fi
done
exit $status
