"""compare_runs: match the two runs' records and judge every pair (exact, accuracy, latency, status)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bench.compare import provenance as prov
from bench.compare.accuracy import compare_accuracy, reproducibility_conditions
from bench.compare.exact import compare_exact
from bench.compare.findings import SILENT_KINDS, Finding
from bench.compare.latency import compare_latency
from bench.compare.load import LoadedRun, UnusableInput, describe_key, load_repeats
from bench.compare.status import compare_status, only_in_one

# `skip`: latency is not compared at all (make regress judges it in its A/B run; against a baseline recorded on
# another machine a latency row would only mislead: 20 of 22 rows "faster" after a reboot, for unchanged code)
LATENCY_GATES = ("same-machine", "always", "never", "skip")
BUSY_SHARE = 0.8  # below this share of the wall time on its cores, a run was timed on a busy machine
# NEW timed with less than this fraction of the least share any BASE run had is outside what BASE measured
# (sub-millisecond calls slow down with a busier machine's cold caches; docs/design/compare.md): not gated
BUSIER_THAN_BASE = 0.9
COLUMNS = ["job", "check", "field", "base", "new", "change", "p_value", "verdict", "fails", "note", "kind"]


@dataclass
class Comparison:
    """The judged comparison: one row per finding, the overall verdict and what the provenance says."""

    base: LoadedRun  # the first of BASE's repeated runs (all of them in `base_repeats`)
    new: LoadedRun  # the first of NEW's repeated runs (all of them in `new_repeats`)
    rows: pd.DataFrame
    settings: dict
    context: list[str] = field(default_factory=list)  # lines about the runs: machines, versions, gating
    base_repeats: list[LoadedRun] = field(default_factory=list)
    new_repeats: list[LoadedRun] = field(default_factory=list)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.rows[self.rows["fails"]]

    @property
    def verdict(self) -> str:
        return "regression" if len(self.regressions) else "no regression"

    @property
    def exit_code(self) -> int:
        return 1 if len(self.regressions) else 0

    def counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.rows["verdict"].value_counts().items()}

    def silent_counts(self) -> dict[str, int]:
        """The failing findings of the kinds that used to pass silently (missing, data change, skipped, no
        samples), by kind, in that order; {} when there are none."""
        if "kind" not in self.rows:
            return {}
        failing = self.regressions["kind"].value_counts()
        return {kind: int(failing[kind]) for kind in SILENT_KINDS if kind in failing}


def _as_runs(value, side: str) -> list[LoadedRun]:
    if isinstance(value, LoadedRun):
        return [value]
    if isinstance(value, (list, tuple)):
        runs = [r for v in value for r in _as_runs(v, side)]
        if not runs:
            raise UnusableInput(f"{side}: no runs given")
        return runs
    return load_repeats(value)


def compare_runs(base, new, *, latency_effect: float = 0.10, alpha: float = 0.01,
                 accuracy_tol: float = 0.02, allow_size_change: bool = False,
                 latency_gate: str = "same-machine", allow_missing: bool = False, allow_data_change: bool = False,
                 allow_skipped: bool = False, allow_param_change: bool = False,
                 identical_code: bool = False, paired: bool = False) -> Comparison:
    """Compare two runs (folders, results.json files, pytest-benchmark JSON files, or `LoadedRun`s).

    BASE may also be several repeated runs of the same code (a folder of run folders, or a list): their spread
    is the drift the latency test allows for; the first repeat stands for BASE in everything else. NEW may be
    repeated runs as well (`make regress` reruns the models whose latency failed once, to confirm): a latency
    regression must then hold in every NEW run that timed the row; the first NEW run stands for NEW elsewhere.

    Raises `UnusableInput` (a ValueError) for inputs that cannot be compared; everything else is a finding.
    `latency_gate`: whether a latency regression fails the comparison: `same-machine` (the default: only when
    both records ran on the same machine with the same thread count), `always`, or `never`.

    Nothing that cannot be judged passes silently; each of these fails unless its option accepts it:
    `allow_missing` (a record of BASE missing in NEW; latency samples in BASE and none in NEW),
    `allow_data_change` (accuracy on another or an unknown data fingerprint), `allow_skipped` (ok in BASE,
    skipped in NEW), `allow_param_change` (params, trainable_params), `allow_size_change` (gmacs, model_mb,
    onnx_mb). `paired`: an A/B run (`bench ab`): BASE's and NEW's run of each job were timed back to back on this machine, so
    the busier-machine rule is off, a call shorter than the reference workload is reported, not gated, and where
    the sides share no reference workload latency is judged on CPU time alone. `identical_code`: both sides ran the same source tree (an A/B run), so the reproducibility rule
    applies although the commits differ (everything else it asks is still asked)."""
    if not 0 < alpha < 1:
        raise UnusableInput(f"--alpha must be between 0 and 1, got {alpha}")
    if latency_effect < 0 or accuracy_tol < 0:
        raise UnusableInput("--latency-effect and --accuracy-tol must be >= 0")
    if latency_gate not in LATENCY_GATES:
        raise UnusableInput(f"--latency-gate must be one of {', '.join(LATENCY_GATES)}, got {latency_gate!r}")
    repeats, new_repeats = _as_runs(base, "BASE"), _as_runs(new, "NEW")
    base_run, new_run = repeats[0], new_repeats[0]
    for run in new_repeats:
        if run.kind != base_run.kind:
            raise UnusableInput(f"{run.source}: a {run.kind} file compared with a {base_run.kind} run "
                                f"({base_run.source}); compare like with like")
    a_records, b_records = base_run.by_key(), new_run.by_key()
    repeat_records = [(r.by_key(), r.provenance) for r in repeats]
    new_repeat_records = [(r.by_key(), r.provenance) for r in new_repeats]
    pa, pb = base_run.provenance, new_run.provenance
    versions = prov.version_difference(pa, pb)
    software = prov.software_difference(pa, pb, identical_code=identical_code)
    base_shares = [share for share in (prov.cpu_share(r.records) for r in repeats) if share is not None]
    new_shares = [share for share in (prov.cpu_share(r.records) for r in new_repeats) if share is not None]
    new_share = min(new_shares) if new_shares else None  # the busiest NEW run
    busier = (f"NEW was timed on a busier machine than every BASE run (the process had its cores {new_share:.0%} of "
              f"the timed wall time, BASE {min(base_shares):.0%}-{max(base_shares):.0%}): outside the drift BASE "
              f"measured") if base_shares and new_share is not None and new_share < BUSIER_THAN_BASE * min(base_shares) \
        else ""
    found: list[Finding] = []
    for key in list(a_records) + [k for k in b_records if k not in a_records]:
        job = describe_key(key)
        if key not in b_records:
            found.append(only_in_one(job, a_records[key], "base", allow_missing))
            continue
        if key not in a_records:
            found.append(only_in_one(job, b_records[key], "new"))
            continue
        ra, rb = a_records[key], b_records[key]
        status = compare_status(job, ra, rb, allow_skipped)
        found.extend(status)
        if status:  # a failed or skipped side: its partial numbers are not judged ...
            if "failed" not in (ra.get("status", "ok"), rb.get("status", "ok")):
                # ... but a skipped variant's record keeps the model's sizes: a skip must not hide their change
                found.extend(compare_exact(job, ra, rb, allow_size_change, versions,
                                           allow_param_change=allow_param_change, recorded_by_both=True))
            continue
        machine = prov.machine_difference(pa, pb, ra, rb)
        found.extend(compare_exact(job, ra, rb, allow_size_change, versions, allow_param_change=allow_param_change))
        found.extend(compare_accuracy(job, ra, rb, alpha=alpha, tol=accuracy_tol,
                                      not_reproducible_because=reproducibility_conditions(ra, rb, machine, software),
                                      allow_data_change=allow_data_change))
        gate = latency_gate == "always" or (latency_gate == "same-machine" and not machine)
        bases = [(records[key], provenance) for records, provenance in repeat_records
                 if key in records and records[key].get("status", "ok") == "ok"]
        news = [(records[key], provenance) for records, provenance in new_repeat_records
                if key in records and records[key].get("status", "ok") == "ok"]
        if latency_gate == "skip":
            continue
        found.extend(compare_latency(job, bases, news, same_machine=not machine, gate=gate, alpha=alpha,
                                     effect=latency_effect,
                                     busier_than_base=busier if latency_gate == "same-machine" and not paired else "",
                                     allow_missing=allow_missing, paired=paired))
    rows = pd.DataFrame([f.as_dict() for f in found], columns=COLUMNS)
    rows["fails"] = rows["fails"].astype(bool)
    machine_diffs = prov.machine_difference(pa, pb)
    base_line = f"BASE: {base_run.source} ({prov.describe(pa)})"
    if len(repeats) > 1:
        base_line = f"BASE: {len(repeats)} repeated runs, first {base_run.source} ({prov.describe(pa)})"
    new_line = f"NEW:  {new_run.source} ({prov.describe(pb)})"
    if len(new_repeats) > 1:
        new_line = f"NEW:  {len(new_repeats)} repeated runs, first {new_run.source} ({prov.describe(pb)})"
    context = [base_line, new_line,
               "machine and thread count: " + ("the same" if not machine_diffs else
                                               "DIFFERENT (" + "; ".join(machine_diffs) + ")")]
    if versions:
        context.append(f"versions differ: {versions}")
    for side, run in (("BASE", base_run), ("NEW", new_run)):
        share = prov.cpu_share(run.records)
        if share is not None and share < BUSY_SHARE:
            context.append(f"{side} was timed on a busy machine: the process had its cores {share:.0%} of the timed "
                           f"wall time (latency is judged on CPU time, which leaves that out)")
    if latency_gate == "same-machine":
        context.append("latency " + ("gates (same machine and thread count)" if not machine_diffs else
                                     "is reported, not gated (different machines: normalised by matmul peak)"))
        if busier and not machine_diffs:
            context.append(busier + ": latency of calls shorter than the reference workload (and of rows without "
                           "one) is reported, not gated")
    elif latency_gate == "skip":
        context.append("latency: not compared (--latency-gate skip)")
    else:
        context.append(f"latency gating: {latency_gate}")
    if paired:
        context.append("paired (A/B): each job's BASE and NEW timed back to back here")
    if identical_code:
        context.append("identical code on both sides (A/B): the reproducibility rule does not ask for one commit")
    settings = {"latency_effect": latency_effect, "alpha": alpha, "accuracy_tol": accuracy_tol,
                "allow_size_change": allow_size_change, "allow_param_change": allow_param_change,
                "allow_missing": allow_missing, "allow_data_change": allow_data_change,
                "allow_skipped": allow_skipped, "identical_code": identical_code, "paired": paired, "latency_gate": latency_gate}
    return Comparison(base_run, new_run, rows, settings, context, repeats, new_repeats)


__all__ = ["Comparison", "compare_runs", "UnusableInput", "LATENCY_GATES"]
