#!/usr/bin/env bash
# The CI regression gate (docs/compare.md): rerun the small deterministic run behind the committed baseline
# and judge it with `bench compare`. Exact fields and accuracy gate; latency gates only where the machine
# and thread count match the baseline's (bench compare's default --latency-gate same-machine).
#
#   benchmarks/regress.sh            # make regress: measure into runs/regress, compare, exit 0/1 (2: unusable)
#   benchmarks/regress.sh baseline   # make regress-baseline: measure and replace benchmarks/baseline/ (commit it)
#
# The baseline keeps REPEATS runs of the quick suite (benchmarks/baseline/quick/r1 ...): their spread is how much
# this machine's latency drifts between runs of the same code, and bench compare allows for it. A latency row
# that fails is timed once more (the quick suite of those models only, runs/regress/quick/r2) and fails the
# gate only if it is slower in both runs: a drift that strikes one run then passes, a slower model does not
# (docs/compare.md, "Confirming a latency regression").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODE=${1:-check}
OUT=${REGRESS_OUT:-runs/regress}
BASELINE=${REGRESS_BASELINE:-benchmarks/baseline}
REPEATS=${REGRESS_REPEATS:-5}

# The baseline's two runs. Change them here, then refresh the baseline: `make regress-baseline`.
QUICK=(--suite quick --threads 1 --seed 0)
ACCURACY=(--suite accuracy --models pixel_stats,u2net_small --categories nut --epochs 1 --image-size 64 --threads 1 --seed 0)

measure_quick() { "$PY" -m bench.cli run "${QUICK[@]}" --out "$@"; }
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
        measure_quick "$OUT/quick/r1"
        measure_accuracy "$OUT/accuracy"
        set +e
        "$PY" -m bench.cli compare "$BASELINE/quick" "$OUT/quick" --format json > "$OUT/compare-quick-r1.json"
        code=$?
        set -e
        slow=""
        if [ "$code" -eq 1 ]; then  # the models with a failing latency row (a job reads "quick MODEL VARIANT ...")
            slow=$("$PY" -c 'import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print(",".join(sorted({r["job"].split()[1] for r in rows if r["fails"] and r["check"] == "latency"})))' \
                "$OUT/compare-quick-r1.json")
        fi
        if [ -n "$slow" ]; then
            echo "== latency failed in one run for $slow: timing those models once more to confirm"
            measure_quick "$OUT/quick/r2" --models "$slow"
        fi
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
