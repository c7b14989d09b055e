#!/usr/bin/env bash
# The whole test suite, as README.md's `make test` runs it and CI runs it (.ci/run):
# static checks, a throwaway PostgreSQL server and Debian's Chromium, then every test
# against SQLite and PostgreSQL with the race detector. In CI (CI=true) a PostgreSQL that
# cannot start or a Chromium that cannot be installed fails the run; tests never skip them.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.git/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

step "go vet"
go vet ./...

step "generated files are up to date"
snapshot() { { git status --porcelain; git diff; } | sha256sum; }
before=$(snapshot)
go generate ./...
if [ "$(snapshot)" != "$before" ]; then
  git --no-pager status --short
  echo "go generate changed files: run it and commit the result"; exit 1
fi

step "PostgreSQL"
pgdir=$(mktemp -d /tmp/lupa-pg.XXXXXX)
cleanup() { .ci/postgres.sh stop "$pgdir" || true; rm -rf "$pgdir"; }
trap cleanup EXIT
LUPA_TEST_POSTGRES_URL=$(.ci/postgres.sh start "$pgdir")
export LUPA_TEST_POSTGRES_URL
echo "started $LUPA_TEST_POSTGRES_URL"

step "Chromium"
LUPA_TEST_CHROMIUM=$(.ci/chromium.sh)
export LUPA_TEST_CHROMIUM
"$LUPA_TEST_CHROMIUM" --version

step "go test -race (SQLite and PostgreSQL, browser tests in Chromium)"
out=$(mktemp /tmp/lupa-test.XXXXXX)
if go test -race -count=1 -timeout 30m "$@" ./... 2>&1 | tee "$out"; then
  rm -f "$out"; exit 0
fi
# A CI log is often cut to its end, so repeat there what failed: the failing tests and
# the first race report whole (which two goroutines, where each was started).
step "what failed"
grep -E '^\s*--- FAIL|^FAIL|^panic:' "$out" | head -40 || true
awk '/^WARNING: DATA RACE/ {on=1} on {print} on && /^==================/ {exit}' "$out"
rm -f "$out"
exit 1
