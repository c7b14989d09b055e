#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL server in DIR, for tests and benchmarks.
#   .ci/postgres.sh start DIR [durable]   prints the server's URL (unix socket in DIR)
#   .ci/postgres.sh stop DIR
# Installs Debian's postgresql package when it is missing and we are root. Without
# "durable", fsync is off: tests need isolation, not crash safety. Benchmarks pass durable,
# so Lupa and pgbench both pay for real commits.
set -euo pipefail
cmd=${1:?start or stop}
dir=${2:?directory}

pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner=()
if [ "$(id -u)" = 0 ]; then as_owner=(runuser -u postgres --); fi

case "$cmd" in
start)
  bin=$(pgbin)
  if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL is not installed: install Debian's postgresql package" >&2
      exit 1
    fi
    echo "installing Debian's postgresql package…" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bin=$(pgbin)
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
  fi
  "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  opts="-c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=400 -c shared_buffers=512MB"
  if [ "${3:-}" != durable ]; then
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$opts" start >/dev/null ||
    { cat "$dir/server.log" >&2; exit 1; }
  echo "postgres://postgres@/postgres?host=$dir&sslmode=disable"
  ;;
stop)
  bin=$(pgbin)
  if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  ;;
*)
  echo "usage: $0 start|stop DIR [durable]" >&2
  exit 2
  ;;
esac
