#!/usr/bin/env bash
# The CI regression gate (docs/compare.md): rerun the small deterministic run behind the committed baseline
# and judge it with `bench compare`. Exact fields and accuracy gate; latency gates only where the machine
# and thread count match the baseline's (bench compare's default --latency-gate same-machine).
#
#   benchmarks/regress.sh            # make regress: measure into runs/regress, compare, exit 0/1 (2: unusable)
#   benchmarks/regress.sh baseline   # make regress-baseline: measure and replace benchmarks/baseline/ (commit it)
#
# The baseline keeps REPEATS runs of the quick suite (benchmarks/baseline/quick/r1 ...): their spread is how much
# this machine's latency drifts between runs of the same code, and bench compare allows for it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODE=${1:-check}
OUT=${REGRESS_OUT:-runs/regress}
BASELINE=benchmarks/baseline
REPEATS=${REGRESS_REPEATS:-5}

# The baseline's two runs. Change them here, then refresh the baseline: `make regress-baseline`.
QUICK=(--suite quick --threads 1 --seed 0)
ACCURACY=(--suite accuracy --models pixel_stats,u2net_small --categories nut --epochs 1 --image-size 64 --threads 1 --seed 0)

measure_quick() { "$PY" -m bench.cli run "${QUICK[@]}" --out "$1"; }
measure_accuracy() { "$PY" -m bench.cli run "${ACCURACY[@]}" --out "$1"; }

keep_results() {  # a run folder's results.json only (no checkpoints, galleries or per-job files)
    mkdir -p "$2"
    cp "$1/results.json" "$2/results.json"
}

case "$MODE" in
    baseline)
        work=runs/regress-baseline
        rm -rf "$work"
        for i in $(seq "$REPEATS"); do
            measure_quick "$work/quick/r$i"
        done
        measure_accuracy "$work/accuracy"
        rm -rf "$BASELINE"  # replaced only once every run has ended
        for i in $(seq "$REPEATS"); do
            keep_results "$work/quick/r$i" "$BASELINE/quick/r$i"
        done
        keep_results "$work/accuracy" "$BASELINE/accuracy"
        echo "baseline written to $BASELINE/ ($REPEATS quick runs, one accuracy run): review and commit it"
        ;;
    check)
        rm -rf "$OUT"
        measure_quick "$OUT/quick"
        measure_accuracy "$OUT/accuracy"
        status=0
        for part in quick accuracy; do
            echo "== $part: $BASELINE/$part vs $OUT/$part"
            "$PY" -m bench.cli compare "$BASELINE/$part" "$OUT/$part" --format markdown > "$OUT/compare-$part.md" || true
            set +e
            "$PY" -m bench.cli compare "$BASELINE/$part" "$OUT/$part"
            code=$?
            set -e
            [ "$code" -gt "$status" ] && status=$code
        done
        echo "markdown for a pull-request comment: $OUT/compare-quick.md, $OUT/compare-accuracy.md"
        exit "$status"
        ;;
    *)
        echo "usage: $0 [check|baseline]" >&2
        exit 2
        ;;
esac
