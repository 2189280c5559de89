"""`bench compare BASE NEW`: exact where the quantity is exact, statistical where it is not (docs/design/compare.md).

    from bench.compare import compare_runs
    result = compare_runs("runs/main", "runs/pr", latency_effect=0.10, alpha=0.01, accuracy_tol=0.02)
    result.rows        # pandas DataFrame, one row per finding (job, check, field, base, new, change, ...)
    result.verdict     # "regression" | "no regression"; result.exit_code 1 | 0
"""
from bench.compare.judge import LATENCY_GATES, Comparison, compare_runs
from bench.compare.load import MATCH_KEYS, LoadedRun, UnusableInput, load_run

__all__ = ["compare_runs", "Comparison", "load_run", "LoadedRun", "UnusableInput", "MATCH_KEYS", "LATENCY_GATES"]
