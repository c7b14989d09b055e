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
go test -race -count=1 -timeout 30m "$@" ./...
