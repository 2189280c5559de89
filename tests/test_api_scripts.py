"""The Python API from an ordinary script (issue 22, item 7): a script file without an
`if __name__ == "__main__":` guard, and the same script piped to `python -`. The process executor's workers
are spawned; they must not re-run the caller's main module (which called `bench.run` again inside every
worker, or, read from stdin, had no file to re-run), so both failed every job with "worker exited with status 1".
Run from a folder outside the repository, with the repository on PYTHONPATH only."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

SCRIPT = """\
import sys

import bench
from bench.api import exit_status

frame = bench.run("quick", ["pixel_stats"], threads=1, out={out!r}, quiet=True)
print(frame[["model", "status", "error"]].to_string() if "error" in frame else frame[["model", "status"]].to_string())
sys.exit(exit_status(frame))
"""


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_api_runs_from_an_unguarded_script(tmp_path, how):
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    out = tmp_path / "run"
    text = SCRIPT.format(out=str(out))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    if how == "file":
        script = cwd / "my_benchmark.py"
        script.write_text(text)
        done = subprocess.run([sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
    else:
        done = subprocess.run([sys.executable, "-"], input=text, cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "bootstrapping phase" not in done.stderr and "FileNotFoundError" not in done.stderr, done.stderr[-3000:]
    records = json.loads((out / "results.json").read_text())["records"]
    mine = [r for r in records if r.get("model") == "pixel_stats"]
    assert mine, records
    assert all(r["status"] == "ok" for r in mine), [r.get("error") for r in mine]


def test_workers_start_without_the_callers_main_module_which_is_put_back_even_on_error():
    from multiprocessing import spawn

    from bench.executors.process import _without_main

    main = sys.modules["__main__"]
    with pytest.raises(KeyError):
        with _without_main():
            data = spawn.get_preparation_data("defectbench-test")
            assert "init_main_from_path" not in data and "init_main_from_name" not in data
            raise KeyError("inside")
    assert sys.modules["__main__"] is main
