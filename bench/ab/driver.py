"""`bench ab`: measure BASE's code and NEW's code on this machine, job by job, interleaved, then judge them.

What `asv continuous` does for benchmarks, for defectbench's jobs: both sides plan the same `bench run`
options with their own code; then each job runs once in BASE's side process and once in NEW's, back to back,
alternating which goes first (A B, B A, ...). Both sides of a job are timed within the same minute on the same
boot, so latency is always judged like with like (never across machines), and an accuracy difference between
two sides whose code is identical is non-determinism, not a change. `--rounds R` repeats every job R times
per side (folders r1..rR): the latency test then pairs round k's two runs (bench/compare/latency.py).

Layout of OUT:  OUT/base/r1/, OUT/new/r1/ (run folders, as `bench run` writes them), OUT/base.log and
OUT/new.log (what the side processes printed), OUT/compare.md and OUT/compare.json (the verdict).
"""
from __future__ import annotations

import json
import os
import selectors
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.ab.sources import CODE_PATHS, PROTOCOL, Source, SourceError, check_runnable, checkout, code_difference, repo_root, resolve

# `bench run` options whose value is a path: made absolute, since each side runs in its own checkout
PATH_OPTIONS = ("--data-root", "--plugin", "--weights", "--vgg-weights", "--checkpoints")
START_SECONDS = 600.0  # a side that has not planned by then (imports hung) is given up


class ABError(ValueError):
    """Unusable input or a side that cannot run: exit 2, one line."""


@dataclass
class SideProcess:
    source: Source
    args: list[str]
    log: Path
    process: subprocess.Popen | None = None
    plan: dict = field(default_factory=dict)  # prefix -> job info
    order: list = field(default_factory=list)
    unknown_models: list = field(default_factory=list)
    git_sha: str = ""
    deaths: int = 0

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(self.source.path)] +
                                                          [p for p in [os.environ.get("PYTHONPATH")] if p]))
        log = open(self.log, "a")
        # cwd: the side's checkout, so `-m bench.ab.side` imports its code, and its synthetic-data cache is its own
        self.process = subprocess.Popen([sys.executable, "-m", "bench.ab.side", *self.args], cwd=self.source.path,
                                        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        message = self.receive(START_SECONDS)
        if message is None or "error" in message:
            why = message["error"] if message else self.tail()
            self.stop()
            raise ABError(f"{self.source.label} cannot run these options ({self.source.describe()}): {why}")
        if message.get("protocol") != PROTOCOL:
            self.stop()
            raise ABError(f"{self.source.label} speaks side protocol {message.get('protocol')}, this driver {PROTOCOL}")
        self.plan = {job["prefix"]: job for job in message["plan"]}
        self.order = [job["prefix"] for job in message["plan"]]
        self.unknown_models = message.get("unknown_models") or []
        self.git_sha = message.get("git_sha", "")

    def receive(self, timeout: float | None) -> dict | None:
        """The next message, or None when the side died or did not answer within `timeout` seconds."""
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                return None
        line = self.process.stdout.readline()
        return json.loads(line) if line else None

    def send(self, message: dict) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def tail(self, lines: int = 3) -> str:
        try:
            text = [line for line in self.log.read_text().splitlines() if line.strip()]
        except OSError:
            return "no output"
        return " | ".join(text[-lines:]) or "no output"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def run(self, prefix: str, out: Path) -> dict:
        """Run one job into `out`; a side that dies or hangs gets the job's records written as failed and is
        started again for the next job."""
        job = self.plan[prefix]
        try:
            self.send({"run": prefix, "out": str(out)})
            answer = self.receive(job["timeout"])
        except (BrokenPipeError, OSError):
            answer = None
        if answer is not None:
            return answer
        hung = self.process is not None and self.process.poll() is None
        why = (f"timed out after {job['timeout']:g} s" if hung else
               f"the {self.source.label} side process died: {self.tail()}")
        self.stop()
        self.deaths += 1
        write_failed(out, job, why)
        self.start()
        return {"done": prefix, "statuses": ["failed"], "seconds": None, "error": why}

    def finish(self, outs: list[Path]) -> None:
        self.send({"finish": [str(o) for o in outs]})
        self.receive(START_SECONDS)
        if self.process is not None:
            self.process.wait(timeout=60)


def write_failed(out: Path, job: dict, why: str) -> None:
    """A job file with the job's expected records marked failed (the side could not write them)."""
    from bench import run_folder

    records = [dict(stub, error=why) for stub in job["failed"]]
    run_folder.write_job(out, job["job_id"], {}, records, {}, complete=True)


def absolute_paths(args: list[str]) -> list[str]:
    out, take = [], False
    for arg in args:
        if take:
            out.append(str(Path(arg).resolve()))
            take = False
            continue
        name, sep, value = arg.partition("=")
        if name in PATH_OPTIONS and sep:
            out.append(f"{name}={Path(value).resolve()}")
        else:
            out.append(arg)
            take = arg in PATH_OPTIONS
    return out


@dataclass
class ABRun:
    """What was measured: the two sources, the folders, and how the code compares."""

    base: Source
    new: Source
    out: Path
    rounds: int
    code_changes: list[str]
    notes: list[str]
    base_only: list[str]
    new_only: list[str]

    @property
    def identical_code(self) -> bool:
        return not self.code_changes


def measure(base_ref: str, new_ref: str | None, run_args: list[str], out: Path, *, rounds: int = 1,
            say=print) -> ABRun:
    """Check out the sides, plan both, run every job interleaved; returns where the runs are."""
    if rounds < 1:
        raise ABError(f"--rounds must be at least 1, got {rounds}")
    if any(a == "--out" or a.startswith("--out=") for a in run_args):
        raise ABError("--out: give it to `bench ab` (its sides write OUT/base and OUT/new)")
    here = Path(__file__).resolve().parents[2]
    try:
        repo = repo_root(here)
        sources_dir = repo / "runs" / "ab-src"
        base = checkout(repo, resolve(repo, base_ref), sources_dir, "BASE")
        new = checkout(repo, resolve(repo, new_ref), sources_dir, "NEW") if new_ref else Source("NEW", repo, None)
        for source in (base, new):
            check_runnable(source)
        changes = code_difference(repo, base, new)
    except SourceError as exc:
        raise ABError(str(exc)) from None
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for side in ("base", "new"):  # a folder describes one A/B run
        for old in (out / side).glob("r*"):
            shutil.rmtree(old)
    args = absolute_paths(run_args)
    sides = {label: SideProcess(source, args + ["--out", str(out / label.lower() / "plan")], out / f"{label.lower()}.log")
             for label, source in (("BASE", base), ("NEW", new))}
    for side in sides.values():
        side.log.write_text("")
    say(f"A/B: BASE {base.describe()}; NEW {new.describe()}")
    say(f"code ({', '.join(CODE_PATHS)}): " +
        ("identical: an accuracy difference on an epoch budget is non-determinism" if not changes else
         f"{len(changes)} file(s) differ"))
    try:
        for side in sides.values():  # both plan before anything is measured: bad options cost nothing
            side.start()
        notes = [f"{label} does not register {', '.join(s.unknown_models)}: only NEW measures it"
                 for label, s in sides.items() if s.unknown_models]
        prefixes = sides["NEW"].order + [p for p in sides["BASE"].order if p not in sides["NEW"].plan]
        base_only = [p for p in prefixes if p not in sides["NEW"].plan]
        new_only = [p for p in prefixes if p not in sides["BASE"].plan]
        for note in notes + [f"only BASE plans {p}" for p in base_only] + [f"only NEW plans {p}" for p in new_only]:
            say(note)
        started = time.perf_counter()
        for r in range(1, rounds + 1):
            for i, prefix in enumerate(prefixes):
                first_base = (i + r) % 2 == 1
                order = ["BASE", "NEW"] if first_base else ["NEW", "BASE"]
                times = []
                for label in order:
                    side = sides[label]
                    if prefix not in side.plan:
                        continue
                    answer = side.run(prefix, out / label.lower() / f"r{r}")
                    seconds = answer.get("seconds")
                    failed = [s for s in answer.get("statuses", []) if s == "failed"]
                    times.append(f"{label} {seconds:.1f} s" if seconds is not None else f"{label} -")
                    if failed:
                        times[-1] += f" ({len(failed)} failed{': ' + answer['error'] if answer.get('error') else ''})"
                round_note = f" round {r}/{rounds}" if rounds > 1 else ""
                say(f"[{i + 1}/{len(prefixes)}]{round_note} {prefix}: {', '.join(times)}")
        for label, side in sides.items():
            side.finish([out / label.lower() / f"r{r}" for r in range(1, rounds + 1)])
        say(f"measured in {time.perf_counter() - started:.0f} s")
    finally:
        for side in sides.values():
            side.stop()
    return ABRun(base, new, out, rounds, changes, notes, base_only, new_only)


def run_ab(base_ref: str, new_ref: str | None = None, run_args: list[str] = (), out: str | Path = "runs/ab", *,
           rounds: int = 1, say=print, **compare_options):
    """Measure both sides (`measure`) and judge them with `bench compare`'s rules; returns (ABRun, Comparison).

    Accuracy between sides with identical code must be bit-identical (`identical_code`); with different code
    the statistical tests judge it. Latency is judged on this machine's samples of both sides."""
    from bench.compare import compare_runs

    ab = measure(base_ref, new_ref, list(run_args), Path(out), rounds=rounds, say=say)
    result = compare_runs(ab.out / "base", ab.out / "new", identical_code=ab.identical_code, paired=True,
                          **compare_options)
    result.context[:0] = [f"A/B on this machine: BASE {ab.base.describe()}, NEW {ab.new.describe()}, "
                          f"{rounds} round(s), jobs interleaved with alternating order",
                          "code: identical (accuracy must reproduce bit for bit)" if ab.identical_code else
                          f"code: {len(ab.code_changes)} file(s) differ under {', '.join(CODE_PATHS)}"]
    result.context[2:2] = ab.notes
    return ab, result
