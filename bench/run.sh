#!/usr/bin/env bash
# `make bench`: every benchmark of Lupa, each figure printed as a name=value line on stdout
# (progress and diagnostics go to stderr), each bar of the issues' performance sections (2: write
# path, reads, check; 3: the banner; 5: webhook deliveries) as a "bar: …" line with pass or FAIL,
# and a summary at the end. bench/README.md explains it.
#
# It builds the real binary, starts its own throwaway PostgreSQL with real durability (fsync
# on; Lupa and pgbench share it), runs `lupa serve` as a separate process against it and then
# against the embedded SQLite default, and removes everything on exit. Exit status: 0 when
# every bar passes, 1 when one fails or a benchmark could not run.
#
# BENCH_QUICK=1 shortens every phase (a smoke test of the harness, not a measurement);
# BENCH_KEEP=1 keeps the work directory (logs, lupa's stdout/stderr, pgbench output).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# Lupa runs with its defaults (rate limits included): nothing from the caller's environment.
for v in $(compgen -e | grep '^LUPA_' || true); do unset "$v"; done

warmup=5s rounds=3 round_secs=10 write_secs=30 read_secs=20 customers=250000 check_calls=20 hook_subjects=10000
if [ "${BENCH_QUICK:-}" = 1 ]; then
  warmup=2s rounds=1 round_secs=5 write_secs=5 read_secs=5 customers=20000 check_calls=5 hook_subjects=1000
fi

work=$(mktemp -d /tmp/lupa-bench.XXXXXX)
chmod 711 "$work" # PostgreSQL runs as its own user and keeps its data under it
results=$work/results.txt
bars=$work/bars.txt
: >"$results"
: >"$bars"
lupa_pid=
failed=0

cleanup() {
  local rc=$?
  if [ -n "$lupa_pid" ]; then kill -TERM "$lupa_pid" 2>/dev/null || true; wait "$lupa_pid" 2>/dev/null || true; fi
  "$root/.ci/postgres.sh" stop "$work/pg" || true
  if [ "${BENCH_KEEP:-}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n==> %s\n' "$*" >&2; }
record() { tee -a "$results"; }                             # figures: stdout and the summary
get() { sed -n "s/^$1=//p" "$results" | tail -n 1; }
put() { echo "$1=$2" | record; }

# bar NAME OP LIMIT: the issues' bars (OP is <, <= or >=).
bar() {
  local name=$1 op=$2 limit=$3 v verdict
  v=$(get "$name")
  if [ -z "$v" ]; then
    verdict=FAIL
    v="not measured"
  elif awk -v v="$v" -v l="$limit" -v op="$op" 'BEGIN { exit !((op == "<" && v + 0 < l + 0) || (op == "<=" && v + 0 <= l + 0) || (op == ">=" && v + 0 >= l + 0)) }'; then
    verdict=pass
  else
    verdict=FAIL
  fi
  [ "$verdict" = pass ] || failed=1
  echo "bar: $name $op $limit: $verdict ($name=$v)" | tee -a "$bars"
}

# A request that was not answered as it should have been fails the run: a benchmark that
# hides errors is worthless.
no_errors() {
  local name=$1 v
  v=$(get "$name")
  if [ "${v:-x}" != 0 ]; then
    echo "errors: $name=${v:-not measured}: FAIL (see the lines above for what was answered)" | tee -a "$bars"
    failed=1
  fi
}

step "building lupa and the load generator"
go build -o "$work/lupa" ./cmd/lupa
go build -o "$work/loadtest" ./bench/loadtest
go build -o "$work/seed" ./bench/seed
lt=$work/loadtest

step "starting a throwaway PostgreSQL (durable: fsync on)"
pgurl=$(.ci/postgres.sh start "$work/pg" durable)
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
pgpid=$(head -n 1 "$work/pg/data/postmaster.pid")
psql() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work/pg" -U postgres "$@"; }
dburl() { echo "${pgurl/\/postgres\?//$1?}"; }
psql -d postgres -c 'CREATE DATABASE lupa' -c 'CREATE DATABASE naive'
master=$(head -c 32 /dev/urandom | base64)
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') at $work/pg; $(nproc) cores" >&2

# start_lupa NAME VAR=VALUE…: runs `lupa serve` with the demo tenant and sets it up.
start_lupa() {
  local name=$1
  shift
  port=$("$lt" freeport)
  mport=$("$lt" freeport)
  env "$@" LUPA_ADDR="127.0.0.1:$port" LUPA_METRICS_ADDR="127.0.0.1:$mport" \
    LUPA_TRUSTED_PROXIES=127.0.0.1/32 LUPA_LOG_LEVEL=warn \
    "$work/lupa" serve >"$work/$name.out" 2>"$work/$name.err" &
  lupa_pid=$!
  if ! "$lt" setup -serve-out "$work/$name.out" -pid "$lupa_pid" -addr "127.0.0.1:$port" -out "$work/$name.json"; then
    cat "$work/$name.err" >&2
    exit 1
  fi
  metrics=http://127.0.0.1:$mport/metrics
}

stop_lupa() {
  kill -TERM "$lupa_pid"
  wait "$lupa_pid" || true
  lupa_pid=
  if [ -s "$work/$1.err" ]; then
    echo "lupa's log (warnings and errors), last lines:" >&2
    tail -n 5 "$work/$1.err" >&2
  fi
}

# naive_setup: the naive baseline's database, migrated by lupa, with a tenant row and 20,000
# known devices, and pgbench variables of Lupa's sizes copied from an interaction Lupa wrote.
naive_setup() {
  mapfile -t sample < <(psql -d lupa -At -f bench/pgbench/sample.sql)
  pgvars=() psqlvars=()
  for kv in "${sample[@]}"; do pgvars+=(-D "$kv"); psqlvars+=(-v "$kv"); done
  now=$(date +%s%3N)
  pgvars+=(-D "now=$now" -D nknown=20000)
  LUPA_DATABASE_URL="$(dburl naive)" LUPA_MASTER_KEY="$master" LUPA_DATA_DIR="$work/lupa-naive" \
    LUPA_LOG_LEVEL=warn "$work/lupa" migrate >/dev/null
  psql -d naive "${psqlvars[@]}" -v "now=$now" -v nknown=20000 -f bench/pgbench/setup.sql
}
pgbench() { "$pgbin/pgbench" -h "$work/pg" -U postgres -n -M prepared -c 32 -j 2 "$@"; }
# pgbench_run NAME SCRIPT: after a checkpoint and a warm-up of the same length as Lupa's (not
# measured), runs pgbench -T $round_secs and prints NAME=tps, failed transactions and the CPU
# of PostgreSQL, of pgbench and of the machine.
pgbench_run() {
  local name=$1 script=$2 out=$work/$1.txt pg0 pg1 m0 m1 t0 t1
  psql -d naive -c CHECKPOINT
  "$lt" quiet
  pgbench -T "${warmup%s}" -f "$script" "${pgvars[@]}" naive >"$out.warmup" 2>&1 || { cat "$out.warmup" >&2; exit 1; }
  pg0=$("$lt" cputicks "$pgpid")
  m0=$("$lt" cputicks machine)
  t0=$(date +%s%N)
  # In a subshell, so its own stat (read with a builtin) holds pgbench's CPU once it exits.
  (pgbench -T "$round_secs" -f "$script" "${pgvars[@]}" naive >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
    read -r stat </proc/$BASHPID/stat && echo "$stat" >"$out.stat")
  t1=$(date +%s%N)
  pg1=$("$lt" cputicks "$pgpid")
  m1=$("$lt" cputicks machine)
  echo "$name=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | awk '{printf "%.2f", $1}')"
  echo "${name%_tps}_failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
  awk -v p="$((pg1 - pg0))" -v m="$((m1 - m0))" -v s="$(((t1 - t0) / 1000000))" -v n="${name%_tps}" \
    '{ sub(/.*\) /, ""); split($0, f, " ")
       printf "%s_cpu_postgres_pct=%.2f\n%s_cpu_pgbench_pct=%.2f\n%s_cpu_machine_pct=%.2f\n", n, p * 1000 / s, n, (f[14] + f[15]) * 1000 / s, n, m * 1000 / s }' \
    "$out.stat"
}
# combine FILE…: one figure per name from the rounds' figures: counts (errors, requests,
# failed transactions) add up; p99, maximum and peak RSS take the worst round; text figures
# the last round's; everything else (rates, medians, CPU shares) the mean of the rounds.
combine() {
  awk '{ i = index($0, "="); f = substr($0, 1, i - 1); v = substr($0, i + 1)
         n[f]++; last[f] = v; if (!(f in seen)) { seen[f] = 1; names[++k] = f }
         if (v ~ /^-?[0-9.]+$/) { sum[f] += v; if (!(f in max) || v + 0 > max[f]) max[f] = v + 0 } else text[f] = 1 }
           END { for (i = 1; i <= k; i++) { f = names[i]
                   if (f in text) v = last[f]
                   else if (f ~ /(errors|_requests|_failed)$/) v = sum[f]
                   else if (f ~ /(p99_ms|max_ms|rss_mb)$/) v = max[f]
                   else v = sprintf("%.2f", sum[f] / n[f])
                   print f "=" v } }' "$@"
}

# ---------------------------------------------------------------------------------------------
# Write path and naive baseline, interleaved: the machine's speed drifts (a virtual machine
# shares its host), so Lupa and pgbench take turns, each slice after a checkpoint and its own
# warm-up, and the ratio compares the two under the same conditions. Round 0 is run the same
# way and not measured: on a fresh server the first writer alone pays for creating the WAL
# segments that later slices recycle, and its tables grow from empty through several
# re-analyses; without it that all fell in Lupa's first slice, never in pgbench's.
step "write path, PostgreSQL (32 clients, 5 decisions a request, 80 % new devices), and the naive baseline: $rounds rounds of ${round_secs} s each"
start_lupa pg LUPA_DATABASE_URL="$(dburl lupa)" LUPA_MASTER_KEY="$master" LUPA_DATA_DIR="$work/lupa-pg"
: >"$work/devices.txt"
naive_ready=
for round in $(seq 0 "$rounds"); do
  psql -d lupa -c CHECKPOINT
  "$lt" quiet
  "$lt" write -target "$work/pg.json" -c 32 -warmup "$warmup" -duration "${round_secs}s" -pid "$lupa_pid" \
    -pg-pid "$pgpid" -metrics "$metrics" -devices-in "$work/devices.txt" -devices-out "$work/devices.next" \
    >"$work/write.$round.txt"
  mv "$work/devices.next" "$work/devices.txt"
  psql -d lupa -c 'VACUUM ANALYZE' # now, rather than by autovacuum during pgbench's turn
  [ -n "$naive_ready" ] || naive_setup
  naive_ready=1
  pgbench_run naive_tps bench/pgbench/write.sql >"$work/naive.$round.txt"
  psql -d naive -c 'VACUUM ANALYZE'
  echo "round $round: $(grep -h -e '^consents_per_s=' -e '^p99_ms=' "$work/write.$round.txt" | tr '\n' ' ')$(grep -h '^naive_tps=' "$work/naive.$round.txt")" >&2
  if [ "$round" = 0 ]; then # not measured; its errors still count
    mv "$work/write.0.txt" "$work/prime.write.txt"
    mv "$work/naive.0.txt" "$work/prime.naive.txt"
    sed -n 's/^errors=/prime_errors=/p; s/^naive_failed=/prime_naive_failed=/p' "$work"/prime.*.txt | record
  fi
done
combine "$work"/write.*.txt | record
combine "$work"/naive.*.txt | record
put ratio_vs_naive "$(awk -v a="$(get consents_per_s)" -v b="$(get naive_tps)" 'BEGIN { if (b > 0) printf "%.2f", a / b }')"
put ratio_rounds "$(for r in $(seq 1 "$rounds"); do
  awk -F= '/^consents_per_s=/ { a = $2 } /^naive_tps=/ { b = $2 } END { if (b > 0) printf "%.2f ", a / b }' \
    "$work/write.$r.txt" "$work/naive.$r.txt"
done | sed 's/ $//; s/ /,/g')"
bar p99_ms '<' 50
bar rss_mb '<' 150
bar ratio_vs_naive '>=' 1.3
no_errors errors
no_errors naive_failed
no_errors prime_errors
no_errors prime_naive_failed

# ---------------------------------------------------------------------------------------------
step "state reads, PostgreSQL: 64 connections, random known devices, ${read_secs} s"
# The devices are those the write benchmark created through the API; top up to 20,000.
while [ "$(wc -l <"$work/devices.txt")" -lt 20000 ] && [ "${BENCH_QUICK:-}" != 1 ]; do
  "$lt" write -target "$work/pg.json" -c 32 -warmup 0s -duration 10s -known 0 -devices-out "$work/more.txt" >"$work/more.out"
  grep -qx 'errors=0' "$work/more.out" || { echo "seeding devices failed: $(grep '^errors=' "$work/more.out")" >&2; exit 1; }
  cat "$work/more.txt" >>"$work/devices.txt"
done
"$lt" quiet
"$lt" read -target "$work/pg.json" -devices "$work/devices.txt" -c 64 -duration "${read_secs}s" \
  -pid "$lupa_pid" -pg-pid "$pgpid" | record
bar state_reads_per_s '>=' 10000
no_errors state_read_errors

# ---------------------------------------------------------------------------------------------
step "raw inserts (pgbench, one single-row insert a transaction, ${round_secs} s), for scale"
pgbench_run raw_insert_tps bench/pgbench/raw_insert.sql | record
no_errors raw_insert_failed

# ---------------------------------------------------------------------------------------------
step "bulk check, PostgreSQL: seeding $customers customers × 4 purposes through Lupa's writer"
if [ "${BENCH_SEED_HTTP:-}" = 1 ]; then # through POST /v1/subjects/consents: slower
  "$lt" seed -target "$work/pg.json" -n "$customers" | record
else
  LUPA_DATABASE_URL="$(dburl lupa)" LUPA_MASTER_KEY="$master" "$work/seed" -n "$customers" | record
fi
psql -d lupa -c 'VACUUM ANALYZE' -c CHECKPOINT
step "bulk check: 10,000 customer numbers a call (10 % unknown), median of $check_calls calls"
"$lt" quiet
"$lt" check -target "$work/pg.json" -n "$customers" -calls "$check_calls" | record
bar check_10k_p50_ms '<' 100

# ---------------------------------------------------------------------------------------------
step "banner configuration: 64 connections, Origin set, no If-None-Match; Lupa and a bare net/http handler writing the same bytes, $rounds rounds of ${round_secs} s each in turns"
"$lt" quiet
"$lt" config -target "$work/pg.json" -c 64 -rounds "$rounds" -duration "${round_secs}s" | record
bar config_vs_bare '>=' 0.5

# ---------------------------------------------------------------------------------------------
step "banner in headless Chromium: time to the banner's title on 20 first visits, and the widget's size"
chromium=$(.ci/chromium.sh)
go build -o "$work/browser" ./bench/browser
"$lt" quiet
"$work/browser" -target "$work/pg.json" -visits 20 -chromium "$chromium" | record
bar banner_visible_ms '<=' 80
bar widget_gzip_bytes '<=' 8192
bar register_gzip_bytes '<=' 4096
stop_lupa pg

# ---------------------------------------------------------------------------------------------
step "sign-in storm, PostgreSQL: 200 verified accounts, 64 connections posting the sign-in form with correct passwords, ${read_secs} s, on a fresh lupa serve"
psql -d postgres -c 'CREATE DATABASE signin'
start_lupa signin LUPA_DATABASE_URL="$(dburl signin)" LUPA_MASTER_KEY="$master" LUPA_DATA_DIR="$work/lupa-signin"
go build -o "$work/accounts" ./bench/accounts
LUPA_DATABASE_URL="$(dburl signin)" LUPA_MASTER_KEY="$master" "$work/accounts" -n 200 -out "$work/accounts.txt" | record
"$lt" quiet
"$lt" signin -target "$work/signin.json" -accounts "$work/accounts.txt" -c 64 -duration "${read_secs}s" -pid "$lupa_pid" | record
no_errors signin_errors
stop_lupa signin

# ---------------------------------------------------------------------------------------------
step "webhook deliveries, PostgreSQL: a backlog of $hook_subjects subjects (20 % changing four more times) sent to a local receiver, then the lag at 500 consents/s for ${read_secs} s, on a fresh lupa serve"
psql -d postgres -c 'CREATE DATABASE deliveries'
start_lupa deliveries LUPA_DATABASE_URL="$(dburl deliveries)" LUPA_MASTER_KEY="$master" LUPA_DATA_DIR="$work/lupa-deliveries" \
  LUPA_ALLOW_PRIVATE_WEBHOOKS=true
go build -o "$work/deliveries" ./bench/deliveries
"$lt" quiet
"$work/deliveries" -target "$work/deliveries.json" -metrics "$metrics" -subjects "$hook_subjects" -rate 500 \
  -warmup 3s -duration "${read_secs}s" | record
bar deliveries_per_s '>=' 2000
bar lag_p99_ms '<' 1000
no_errors deliveries_errors
stop_lupa deliveries

# ---------------------------------------------------------------------------------------------
step "write path, SQLite (embedded default, synchronous=FULL): the same load, ${write_secs} s"
# Nothing needs PostgreSQL from here on. A server left running would go on writing out what
# the phases before wrote (a spread checkpoint takes minutes) on the disk whose fsyncs every
# SQLite commit waits for: stop it, and let the kernel write back what it still holds.
"$root/.ci/postgres.sh" stop "$work/pg"
sync
start_lupa sqlite LUPA_DATA_DIR="$work/lupa-sqlite"
"$lt" quiet
"$lt" write -prefix sqlite_ -target "$work/sqlite.json" -c 32 -warmup "$warmup" -duration "${write_secs}s" \
  -pid "$lupa_pid" -metrics "$metrics" | record
bar sqlite_consents_per_s '>=' 5000
no_errors sqlite_errors
stop_lupa sqlite

# ---------------------------------------------------------------------------------------------
step "Go micro-benchmarks: go test -run '^\$' -bench . -benchtime 1s ./..."
"$lt" quiet
if go test -run '^$' -bench . -benchtime 1s ./... >"$work/gobench.txt" 2>&1; then
  go_ok=1
else
  go_ok=0
  cat "$work/gobench.txt" >&2
fi
awk '/^pkg: / { pkg = $2; sub(/^github.com\/lupa-cmp\/lupa\/?/, "", pkg); gsub(/\//, ".", pkg) }
     /^Benchmark/ { name = $1; sub(/-[0-9]+$/, "", name)
                    for (i = 3; i < NF; i += 2) { unit = $(i + 1); gsub(/\//, "_", unit)
                                                  printf "go.%s.%s.%s=%s\n", pkg, name, unit, $i } }' \
  "$work/gobench.txt" | record
if [ "$go_ok" != 1 ]; then
  echo "errors: go test -bench failed: FAIL" | tee -a "$bars"
  failed=1
fi

# ---------------------------------------------------------------------------------------------
step "summary"
echo
{
  echo "==== figures ===="
  cat "$results"
  echo "==== bars ===="
  cat "$bars"
} | sed 's/^/  /'
if [ "$failed" = 0 ]; then
  echo "all bars pass"
else
  echo "some bars FAIL"
fi
exit "$failed"
