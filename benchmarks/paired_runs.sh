#!/usr/bin/env bash
# Two programs timed side by side: A and B run AT THE SAME TIME, each pinned to one core
# (taskset), the cores swapped every round, so that both see the same load from the rest of
# the machine (on a shared or virtual machine single runs move by 20-40% from minute to
# minute; the ratio of A and B within a round moves much less). Each program's output lines
# that contain FILTER are kept, prefixed with "[label core N]".
#
#   benchmarks/paired_runs.sh ROUNDS FILTER "labelA|dirA|commandA" "labelB|dirB|commandB"
#
# Each command runs in its dir with PYTHONPATH=dir (so two checkouts can be compared, e.g. a
# git worktree of an old commit). Example (benchmarks/logs/2026-12-07-cpu-keras-tf-against-tf-only.log):
#
#   git worktree add /tmp/old 7e1bf23
#   benchmarks/paired_runs.sh 4 events \
#     "old|/tmp/old|python benchmarks/bench_gru4rec_keras.py --threads 1 --items 3000 37000 --steps 1000" \
#     "new|$PWD|python benchmarks/bench_gru4rec_keras.py --backend tensorflow --threads 1 --items 3000 37000 --steps 1000"
set -euo pipefail
rounds=$1 filter=$2 a=$3 b=$4
command -v taskset >/dev/null || { echo "paired_runs.sh: taskset (util-linux) is needed" >&2; exit 2; }
(( $(nproc) >= 2 )) || { echo "paired_runs.sh: needs 2 cores" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
run() {  # spec core out
    local label dir cmd
    IFS='|' read -r label dir cmd <<<"$1"
    (cd "$dir" && PYTHONPATH="$dir" taskset -c "$2" bash -c "$cmd" 2>/dev/null | grep -- "$filter" |
        sed "s/^/[$label core $2] /" >"$3") || true
}
echo "# $(date -u +%FT%TZ) paired runs, $rounds rounds; uptime: $(uptime)"
echo "# A = $a"
echo "# B = $b"
for r in $(seq 1 "$rounds"); do
    if (( r % 2 )); then ca=0 cb=1; else ca=1 cb=0; fi
    run "$a" $ca "$tmp/a" & run "$b" $cb "$tmp/b" & wait
    echo "## round $r"
    cat "$tmp/a" "$tmp/b"
done
echo "# finished $(date -u +%FT%TZ)"
