#!/usr/bin/env bash
# Wall time and peak memory of `shipshape check` beside Lynis limited to the
# same questions (its firewall, crypto, package-update and SSH test groups),
# measured in one run on this machine. Prints a Markdown table.
#
#   bash benches/check-vs-lynis.sh            # as root, for full facts on both sides
#   RUNS=20 LYNIS_RUNS=3 bash benches/check-vs-lynis.sh
#
# Needs: hyperfine, lynis, GNU time (apt-get install hyperfine lynis time).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${RUNS:-20}
lynis_runs=${LYNIS_RUNS:-3}
out=benches/out
mkdir -p "$out"

for tool in hyperfine lynis /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine lynis time" >&2; exit 2; }
done

cargo build --release --locked -p shipshape >&2
bin=target/release/shipshape
state=$(mktemp -d)
trap 'rm -rf "$state"' EXIT
export SHIPSHAPE_STATE_DIR=$state SHIPSHAPE_CONFIG_DIR=$state/config

shipshape_cmd="$bin check --format json"
lynis_cmd="lynis audit system --quick --no-colors --no-log --no-plugins --tests-from-group 'firewalls crypto ports_packages ssh'"

hyperfine --ignore-failure --warmup 2 --runs "$runs" --export-json "$out/shipshape.json" "$shipshape_cmd" >&2
hyperfine --ignore-failure --warmup 0 --runs "$lynis_runs" --export-json "$out/lynis.json" "$lynis_cmd" >&2

peak_kib() { /usr/bin/time -f '%M' bash -c "$1 >/dev/null 2>&1; true" 2>&1 | tail -1; }
mean_ms() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results'][0]; print(f\"{r['mean']*1000:.1f} ± {r['stddev']*1000:.1f}\")" "$1"; }
mean_s() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['results'][0]['mean'])" "$1"; }

s_rss=$(peak_kib "$shipshape_cmd")
l_rss=$(peak_kib "$lynis_cmd")
ratio=$(python3 -c "print(f'{$(mean_s "$out/lynis.json") / $(mean_s "$out/shipshape.json"):.0f}')")
size=$(stat -c %s "$bin")

cat <<TABLE
| | wall time (ms, mean ± σ) | peak RSS (MiB) |
|---|---|---|
| shipshape check ($runs runs) | $(mean_ms "$out/shipshape.json") | $(python3 -c "print(f'{$s_rss/1024:.1f}')") |
| lynis, same questions ($lynis_runs runs) | $(mean_ms "$out/lynis.json") | $(python3 -c "print(f'{$l_rss/1024:.1f}')") |

shipshape is ${ratio}× faster; release binary $(python3 -c "print(f'{$size/1048576:.1f}')") MiB ($(uname -m), $(nproc) cores, running as $(id -un)).
TABLE
