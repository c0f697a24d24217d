#!/usr/bin/env bash
# Ingest benchmark: a release `shipshape-server serve` on the database given,
# and `shipshape-loadgen` sending it signed full reports, then heartbeats, at
# fixed open-loop rates; prints throughput, p50/p90/p99/max latency and
# errors of each run, and how much CPU the server and the load generator used.
#
#   benches/loadgen.sh                          # SQLite, a fresh file under target/loadgen-bench/
#   benches/loadgen.sh sqlite:/path/to/bench.db
#   benches/loadgen.sh postgres://postgres@127.0.0.1:5432/bench  # an empty database
#                                       (createdb -h 127.0.0.1 -U postgres bench)
#
# Settings, from the environment (defaults in brackets):
#   DEVICES          devices per run, each enrolled anew [2000]
#   FULL_RATES       full reports a second, one run per rate; empty for none ["1000"]
#   HEARTBEAT_RATES  heartbeats a second, one run per rate; empty for none ["5000"]
#   DURATION         length of each run's measured phase [20s]
#   CONCURRENCY      requests in flight at most [256]
#   SEED             the fleet's seed [1]
#   FORMAT           human | json [human]
#
# e.g. find the ceiling:  FULL_RATES="800 1000 1200 1500" HEARTBEAT_RATES="3000 5000 7000" benches/loadgen.sh
#
# The server and the load generator share this machine's cores: the CPU
# lines say how much each used, and how much other processes took meanwhile:
# on PostgreSQL that includes the database's own processes; otherwise it is
# other work on the machine, and the figures are the server's share of a
# busy machine, not its ceiling. The server runs with a config file
# (written below, shown at the start) that turns the per-device rate limit
# off — a benchmark device sends far more than the 60 requests a minute a
# real agent is allowed — and allows more requests in flight than the
# load generator sends, so no request is refused by a limit.
set -euo pipefail
cd "$(dirname "$0")/.."

DEVICES=${DEVICES:-2000}
FULL_RATES=${FULL_RATES-1000}
HEARTBEAT_RATES=${HEARTBEAT_RATES-5000}
DURATION=${DURATION:-20s}
CONCURRENCY=${CONCURRENCY:-256}
SEED=${SEED:-1}
FORMAT=${FORMAT:-human}

work="target/loadgen-bench/$(date +%Y%m%d-%H%M%S)"
mkdir -p "$work"
db=${1:-sqlite:$work/shipshape.db}

echo "building release binaries…" >&2
cargo build --release -p shipshape-server -p shipshape-loadgen >&2
server_bin=target/release/shipshape-server
loadgen_bin=target/release/shipshape-loadgen

cat >"$work/server.toml" <<EOF
# benches/loadgen.sh: limits set for a benchmark, not for production.
rate-limit = 0
max-concurrent-requests = $((CONCURRENCY * 2 + 64))
request-timeout = "30s"
EOF
echo "server config ($work/server.toml):" >&2
sed 's/^/  /' "$work/server.toml" >&2

runs=0
for _ in $FULL_RATES $HEARTBEAT_RATES; do runs=$((runs + 1)); done
[ "$runs" -gt 0 ] || { echo "nothing to run: FULL_RATES and HEARTBEAT_RATES are both empty" >&2; exit 2; }
token=$("$server_bin" --db "$db" token create --enroll --uses $((DEVICES * runs)) 2>/dev/null)

"$server_bin" --config "$work/server.toml" serve --listen 127.0.0.1:0 --db "$db" \
  >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true' EXIT
url=
for _ in $(seq 300); do
  url=$(sed -n 's/^listening on //p' "$work/serve.out")
  [ -n "$url" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.err" >&2; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "the server did not start within 30 s:" >&2; cat "$work/serve.err" >&2; exit 1; }

ticks=$(getconf CLK_TCK)
# The server's CPU time so far, in seconds (user + system).
server_cpu() {
  awk -v ticks="$ticks" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / ticks }' "/proc/$server_pid/stat"
}

# Busy CPU time of the whole machine so far, in seconds (all but idle and iowait).
machine_cpu() {
  awk -v ticks="$ticks" '$1 == "cpu" { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / ticks }' /proc/stat
}

others="other processes"
case $db in postgres*) others="other processes (PostgreSQL's included)" ;; esac

echo "server: $url on $db ($(nproc) cores; results and logs in $work)"
echo

# run NAME RATE SHARE
run() {
  local name=$1 rate=$2 share=$3
  local before after busy_before busy_after started ended
  before=$(server_cpu)
  busy_before=$(machine_cpu)
  started=$(date +%s.%N)
  local TIMEFORMAT='%U %S'
  { time "$loadgen_bin" --server "$url" --enroll-token "$token" --devices "$DEVICES" \
      --rate "$rate" --duration "$DURATION" --heartbeat-share "$share" \
      --concurrency "$CONCURRENCY" --seed "$SEED" --format "$FORMAT" \
      >"$work/$name.out" 2>"$work/$name.err"; } 2>"$work/$name.time"
  ended=$(date +%s.%N)
  after=$(server_cpu)
  busy_after=$(machine_cpu)
  echo "== $name: $rate/s, heartbeat share $share"
  cat "$work/$name.out"
  awk -v before="$before" -v after="$after" -v started="$started" -v ended="$ended" \
    -v busy="$(awk -v a="$busy_before" -v b="$busy_after" 'BEGIN { print b - a }')" -v label="$others" \
    '{ wall = ended - started; server = after - before; loadgen = $1 + $2;
       others = busy - server - loadgen; if (others < 0) others = 0;
       printf "cpu over %.1f s wall (setup included): server %.1f s, loadgen %.1f s, %s %.1f s: %.2f of %d cores busy\n",
         wall, server, loadgen, label, others, busy / wall, cores }' \
    cores="$(nproc)" "$work/$name.time"
  echo
}

for rate in $FULL_RATES; do
  run "full-$rate" "$rate" 0
done
for rate in $HEARTBEAT_RATES; do
  run "heartbeat-$rate" "$rate" 1
done
