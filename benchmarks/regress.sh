#!/usr/bin/env bash
# The CI regression gate (docs/compare.md): rerun the small deterministic run behind the committed baseline
# and judge it with `bench compare`. Exact fields and accuracy gate; latency gates only where the machine
# and thread count match the baseline's (bench compare's default --latency-gate same-machine).
#
#   benchmarks/regress.sh            # make regress: measure into runs/regress, compare, exit 0/1 (2: unusable)
#   benchmarks/regress.sh baseline   # make regress-baseline: measure and replace benchmarks/baseline/ (commit it)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MODE=${1:-check}
OUT=${REGRESS_OUT:-runs/regress}
BASELINE=benchmarks/baseline

# The baseline's two runs. Change them here, then refresh the baseline: `make regress-baseline`.
QUICK=(--suite quick --threads 1 --seed 0)
ACCURACY=(--suite accuracy --models pixel_stats,u2net_small --categories nut --epochs 1 --image-size 64 --threads 1 --seed 0)

measure() {
    rm -rf "$1"
    "$PY" -m bench.cli run "${QUICK[@]}" --out "$1/quick"
    "$PY" -m bench.cli run "${ACCURACY[@]}" --out "$1/accuracy"
    # INTERIM until `bench run` writes results schema 2 itself: then delete this line and the bridge script.
    "$PY" benchmarks/schema1_bridge.py "$1/quick" "$1/accuracy"
}

case "$MODE" in
    baseline)
        measure runs/regress-baseline
        mkdir -p "$BASELINE"
        cp runs/regress-baseline/quick/results.json "$BASELINE/quick.json"
        cp runs/regress-baseline/accuracy/results.json "$BASELINE/accuracy.json"
        echo "baseline written to $BASELINE/ (quick.json, accuracy.json): review and commit it"
        ;;
    check)
        measure "$OUT"
        status=0
        for part in quick accuracy; do
            echo "== $part: $BASELINE/$part.json vs $OUT/$part"
            "$PY" -m bench.cli compare "$BASELINE/$part.json" "$OUT/$part" --format markdown > "$OUT/compare-$part.md" || true
            set +e
            "$PY" -m bench.cli compare "$BASELINE/$part.json" "$OUT/$part"
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
