#!/usr/bin/env bash
# Runs one libFuzzer target of fuzz/ for a while and prints one summary line.
#
#   scripts/fuzz.sh <target> [seconds=60] [--stop] [libFuzzer flags...]
#       fuzz; by default a crash is saved and the run goes on (--stop: end at the first one).
#       e.g. scripts/fuzz.sh rule_parse 600 -only_ascii=1
#   scripts/fuzz.sh cmin <target>                    fold new finds into the kept corpus, minimised
#   scripts/fuzz.sh list                             the targets
#
# Targets: rule_parse ip_parse secret_check glob_match dav_match decision decision_dav store_load store_catch_up pg_changes.
# New inputs go to fuzz/work/<target>/ (not kept); the kept corpus fuzz/corpus/<target>/
# is read as seeds. Crash inputs land in fuzz/artifacts/<target>/: copy the ones worth
# keeping to fuzz/regressions/<target>/, where `cargo test -p keygate-core --test fuzz_replay`
# replays them. The toolchain is stable, so cargo-fuzz's nightly flags need RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1

if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi

case "${1:-}" in
  list)
    cargo fuzz list
    exit 0
    ;;
  cmin)
    target="${2:?usage: scripts/fuzz.sh cmin <target>}"
    mkdir -p "fuzz/corpus/$target"
    if [ -d "fuzz/work/$target" ]; then cp -n "fuzz/work/$target"/* "fuzz/corpus/$target/" 2>/dev/null || true; fi
    cargo fuzz cmin "$target" "fuzz/corpus/$target" -- -timeout=10 >"fuzz/work/cmin-$target.log" 2>&1 \
      || { tail -20 "fuzz/work/cmin-$target.log" >&2; exit 1; }
    echo "$target corpus: $(ls "fuzz/corpus/$target" | wc -l) files, $(du -sh "fuzz/corpus/$target" | cut -f1)"
    exit 0
    ;;
  ""|-h|--help)
    sed -n '2,14p' "$0"
    exit 2
    ;;
esac

target="$1"
seconds="${2:-60}"
shift $(( $# >= 2 ? 2 : 1 ))
mode=""
if [ "${1:-}" = "--stop" ]; then mode=--stop; shift; fi
mkdir -p "fuzz/work/$target" "fuzz/corpus/$target" "fuzz/artifacts/$target"
log="fuzz/work/$target.log"
before=$(ls "fuzz/artifacts/$target" | wc -l)

flags=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$@")
if [ "$mode" != "--stop" ]; then
  # One child process at a time; a crash is saved and the run goes on.
  flags+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
fi

status=0
cargo fuzz run "$target" "fuzz/work/$target" "fuzz/corpus/$target" -- "${flags[@]}" >"$log" 2>&1 || status=$?

# The last status line carries the totals ("#N ... cov: C ft: F corp: K/B ... exec/s: E").
last=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -1 || true)
field() { sed -nE "s|.*$1:? +([^ ]+).*|\\1|p" <<<"$last"; }
# Fork mode's parent counts all children's executions in "#N"; a plain run prints stat:: lines.
execs=$( (grep -oE 'stat::number_of_executed_units: [0-9]+' "$log" || true) | awk '{s+=$2} END {print s+0}')
[ "$execs" -gt 0 ] || execs=$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$last")
after=$(ls "fuzz/artifacts/$target" | wc -l)
crashes=$((after - before))
echo "$target: ${seconds}s execs=${execs:-?} cov=$(field cov) ft=$(field ft) corpus=$(field corp) exec/s=$(field 'exec/s') crashes=$crashes exit=$status log=$log"
if [ "$crashes" -gt 0 ]; then
  ls -t "fuzz/artifacts/$target" | head -"$(( crashes < 5 ? crashes : 5 ))" | sed "s|^|  new: fuzz/artifacts/$target/|"
  [ "$crashes" -le 5 ] || echo "  ... and $((crashes - 5)) more in fuzz/artifacts/$target/"
fi
