#!/usr/bin/env bash
# The release check: proves, without publishing anything, that every
# published module of this repository installs as a user would install it.
#
#  1. go.mod rules (tools/dev/cmd/release check): no replace directive in a
#     published go.mod, in-repo requirements at the version about to be
#     tagged, every module in go.work; prints the tags in dependency order.
#  2. A file-based module proxy holding every published module at that
#     version, zipped (golang.org/x/mod/zip) from the commit HEAD.
#  3. go mod tidy -diff in every module with the workspace off, resolving
#     the in-repo modules from that proxy: no go.mod or go.sum changes
#     (except the go.sum lines of the in-repo modules themselves, whose
#     hashes exist only once the tags do); and go.work.sum complete.
#  4. In a fresh GOPATH and module cache, with the workspace off:
#     go install github.com/jittered/retry/cmd/retry@VERSION, then
#     `retry version`; a scratch module that go gets every published
#     library module at VERSION and runs a program using each.
#  5. gorelease's report for the root module against the previous tag (or,
#     before the first release, against nothing).
#
# Third-party modules come from the local module cache first, then the
# module proxy. Only github.com/jittered/retry is exempt from the checksum
# database (GONOSUMDB), as it is not published yet.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

work=$(mktemp -d)
cleanup() {
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

step() { printf '=== release check: %s\n' "$*"; }

step "go.mod rules"
checked=$(go run ./tools/dev/cmd/release check)
echo "$checked"
version=$(printf '%s\n' "$checked" | sed -n 's/.* published at \([^;]*\);.*/\1/p')
if [ -z "$version" ]; then
	echo "release check: no version found" >&2
	exit 1
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
	echo "note: the work tree has uncommitted changes; the modules are built from HEAD without them"
fi

step "file proxy at $version from HEAD"
go run ./tools/dev/cmd/release proxy -out "$work/proxy"

modcache=$(go env GOMODCACHE)
upstream=$(go env GOPROXY)
export GOPROXY="file://$work/proxy,file://$modcache/cache/download,$upstream"
export GONOSUMDB=github.com/jittered/retry
export GOTOOLCHAIN=local

# A module cache keeps what it once extracted: the in-repo modules at the
# untagged version, extracted by an earlier check from an older HEAD, would
# shadow this proxy's (a package added since is then "not found"). They were
# never published: remove them, so that they come from HEAD. The go
# command also indexes the module cache's packages in GOCACHE, trusting a
# version never to change: goindex=0 turns that index off.
export GODEBUG=goindex=0
for d in "$modcache/github.com/jittered" "$modcache/cache/download/github.com/jittered"; do
	[ -d "$d" ] || continue
	find "$d" -depth \( -name "*@$version" -o -name "$version.*" \) -print0 | while IFS= read -r -d '' f; do
		chmod -R u+w "$f" "$(dirname "$f")"
		rm -rf "$f"
	done
done

step "go mod tidy -diff in every module (workspace off)"
status=0
mapfile -t dirs < <(go list -m -f '{{.Dir}}' | sed "s|^$root|.|")
for d in "${dirs[@]}"; do
	set +e
	out=$(cd "$d" && GOWORK=off GOFLAGS=-mod=mod go mod tidy -diff 2>&1)
	rc=$?
	set -e
	# The in-repo modules' own go.sum lines are left out: they name hashes of
	# versions that exist only once tagged.
	changes=$(printf '%s\n' "$out" | grep -E '^[+-][^+-]' | grep -vE '^[+-]github\.com/jittered/retry(/[^ ]+)? v[^ ]+ h1:' || true)
	if [ $rc -ne 0 ] && ! printf '%s\n' "$out" | grep -q '^diff '; then
		printf '%s: go mod tidy failed:\n%s\n' "$d" "$out" >&2
		status=1
	elif [ -n "$changes" ]; then
		printf '%s: go mod tidy would change go.mod/go.sum (run it there with GOWORK=off and this GOPROXY):\n%s\n' "$d" "$changes" >&2
		status=1
	else
		echo "$d: tidy"
	fi
done
cp go.work.sum "$work/go.work.sum.before"
GOPROXY=$upstream go list -m all >/dev/null
for d in "${dirs[@]}"; do
	(cd "$d" && GOPROXY=$upstream go list -deps -test ./... >/dev/null)
done
if ! cmp -s go.work.sum "$work/go.work.sum.before"; then
	echo "go.work.sum is incomplete: go list added these lines (commit them):" >&2
	diff "$work/go.work.sum.before" go.work.sum >&2 || true
	status=1
else
	echo "go.work.sum: complete"
fi
[ $status -eq 0 ] || exit $status

fresh=(GOWORK=off GOFLAGS= GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOBIN="$work/bin" GOCACHE="$(go env GOCACHE)")

step "go install github.com/jittered/retry/cmd/retry@$version (fresh GOPATH, workspace off)"
(cd "$work" && env "${fresh[@]}" go install "github.com/jittered/retry/cmd/retry@$version")
got=$("$work/bin/retry" version)
echo "installed: $got"
if [ "$got" != "retry $version" ]; then
	echo "release check: retry version printed \"$got\", want \"retry $version\"" >&2
	exit 1
fi

step "a scratch module go gets every published library module at $version"
mkdir -p "$work/scratch"
cp tools/dev/testdata/scratch/main.go "$work/scratch/"
(
	cd "$work/scratch"
	env "${fresh[@]}" go mod init example.com/scratch >/dev/null 2>&1
	for m in $(go -C "$root" run ./tools/dev/cmd/release modules); do
		[ "$m" = cmd/retry ] && continue
		p=github.com/jittered/retry
		[ "$m" != . ] && p=$p/$m
		env "${fresh[@]}" go get "$p@$version"
		echo "got $p@$version"
	done
	env "${fresh[@]}" go get github.com/aws/aws-sdk-go-v2/service/dynamodb github.com/aws/aws-sdk-go-v2/credentials
	env "${fresh[@]}" go mod tidy
	env "${fresh[@]}" go vet .
	env "${fresh[@]}" go run .
)

step "gorelease: the root module's API against the previous release"
base=$(git describe --tags --abbrev=0 --match 'v[0-9]*' 2>/dev/null || true)
if [ -z "$base" ]; then
	base=none
	echo "(no earlier tag: first release, compared with nothing)"
fi
# gorelease asks the proxy which versions exist: before the first tag, a
# proxy that lists none.
mkdir -p "$work/listproxy/github.com/jittered/retry/@v"
: >"$work/listproxy/github.com/jittered/retry/@v/list"
GOPROXY="file://$work/listproxy,$upstream" go tool gorelease -base="$base" -version="$version" || {
	echo "release check: gorelease reports a problem (above)" >&2
	exit 1
}
step "passed: $version installs from the proxy"
