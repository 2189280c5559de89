"""`bench ab BASE_REF`: both commits measured on this machine, job by job, interleaved, and judged.

    from bench.ab import run_ab
    ab, result = run_ab("main", None, ["--suite", "quick", "--threads", "1"], "runs/ab")
    result.rows, result.exit_code    # as bench.compare.compare_runs returns them

bench/ab/driver.py runs the sides, bench/ab/side.py is one side's process, bench/ab/sources.py finds the code.
"""
from bench.ab.driver import ABError, ABRun, measure, run_ab

__all__ = ["ABError", "ABRun", "measure", "run_ab"]
