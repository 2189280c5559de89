"""The Python API under the CLI: `run(...)` returns the results table (a DataFrame), `report(...)` the paths
it wrote. Comparing two runs is `bench.compare.compare_runs(...)`.

`run` validates every option (bench/validate.py), plans the jobs (bench/plan.py), reuses what an earlier run
in the same folder finished with the same settings, hands the rest to an executor (bench/executors/), and
writes each job's records the moment they arrive (bench/run_folder.py).
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench import run_folder
from bench.config import RunConfig
from bench.jobs.spec import JobSpec
from bench.progress import RunProgress
from bench.schema import DEFAULT_VARIANTS, ResultsError
from bench.validate import UsageError

RESULTS_EVERY = 30.0  # seconds between rewrites of results.json / results.csv during a run
# What a fresh run (no --resume) replaces in its folder: a run folder describes one run.
RUN_OUTPUTS = ("records", "results.json", "results.csv", "report", "gallery", "checkpoints", "tmp", "superseded")


def _as_list(value, cast) -> list | None:
    if value is None:
        return None
    if isinstance(value, (int, float, str)):
        value = [value]
    return [cast(v) for v in value]


def make_config(suite: str = "profile", models: Sequence[str] | None = None, *, image_size: int | None = None,
                batch_size: int | None = None, device: str = "auto", threads: int | None = None,
                out: str | Path = "runs/latest", seed: int = 0, seeds: Sequence[int] | None = None,
                resume: bool = False, retry_failed: bool = False, dry_run: bool = False, executor: str = "process",
                job_timeout: float | None = None, job_memory_mb: float | None = None, ray_address: str | None = None,
                plugins: Sequence[str] = (), variants: Sequence[str] | None = None,
                batch_sizes: Sequence[int] | None = None, skip_probes: Sequence[str] = (), dataset: str = "synthetic",
                data_root: str | Path | None = None, categories: Sequence[str] | None = None,
                epochs: int | None = None, train_minutes: Sequence[float] | float | None = None,
                schedule: str | None = None, labelled_defects: int | None = None, folds: int = 5,
                weights: str | None = None, vgg_weights: str | None = None, model_args: dict | None = None,
                eval_only: bool = False, checkpoints: str | Path | None = None,
                val_normals: int | float | None = None, target_fprs: Sequence[float] | None = None,
                train_batch_size: int | None = None, test_subset: int | None = None,
                argv: list[str] | None = None) -> RunConfig:
    minutes = _as_list(train_minutes, float)
    return RunConfig(suite=suite, models=list(models) if models else None, image_size=image_size,
                     batch_size=batch_size, device=device, threads=threads, out=Path(out),
                     seeds=list(seeds) if seeds else [seed], resume=resume, retry_failed=retry_failed, dry_run=dry_run, executor=executor,
                     job_timeout=job_timeout, job_memory_mb=job_memory_mb, ray_address=ray_address,
                     plugins=[str(p) for p in plugins], variants=list(variants or DEFAULT_VARIANTS),
                     batch_sizes=list(batch_sizes) if batch_sizes else None, skip_probes=list(skip_probes or []),
                     dataset=dataset,
                     data_root=Path(data_root) if data_root else None,
                     categories=list(categories) if categories else None, epochs=epochs,
                     train_minutes=sorted(minutes) if minutes else None, schedule=schedule,
                     labelled_defects=labelled_defects, folds=folds, weights=weights, vgg_weights=vgg_weights,
                     model_args=dict(model_args or {}), eval_only=eval_only,
                     checkpoints=Path(checkpoints) if checkpoints else None, argv=argv,
                     train_batch_size=train_batch_size, test_subset=test_subset,
                     **({"val_normals": val_normals} if val_normals is not None else {}),
                     **({"target_fprs": list(target_fprs)} if target_fprs is not None else {}))


def run(suite: str = "profile", models: Sequence[str] | None = None, *, quiet: bool = False, **options) -> pd.DataFrame:
    """Run a suite; write RUN/records/*.json, RUN/results.json and RUN/results.csv; return the table.

    Raises `UsageError` (before any work) for bad options. Keyword options are those of `make_config`."""
    cfg = make_config(suite, models, **options)
    return Run(cfg, quiet=quiet).execute()


class Run:
    """One `bench run`: the plan, what is reused, the executor's records, the files."""

    def __init__(self, cfg: RunConfig, quiet: bool = False):
        self.cfg = cfg
        self.quiet = quiet

    # -- before any work -------------------------------------------------------------------------------
    def plan(self) -> list[JobSpec]:
        from bench.config import default_threads, run_device
        from bench.plan import plan_run
        from bench.validate import check_run

        cfg = self.cfg
        names, root, categories = check_run(cfg)
        self.device = run_device(cfg)
        self.threads = cfg.threads or default_threads()
        if cfg.suite == "deploy":
            from bench.deploy_plan import plan_deploy

            specs = plan_deploy(cfg, cfg.models, self.device.type, self.threads)
        else:
            specs = plan_run(cfg, names, self.device.type, self.threads, root, categories)
        if not specs:
            raise UsageError("nothing to run: no job in the plan (check --models, --categories and --suite)")
        return specs

    def existing_jobs(self) -> dict[str, dict]:
        """Job files already in the run folder, by job id; unreadable ones are named and left to rerun."""
        found = {}
        for path in run_folder.job_files(self.cfg.out):
            try:
                payload = run_folder.read_job(path)
            except ResultsError as exc:
                if "schema" in str(exc):
                    raise UsageError(str(exc)) from None
                self.say(f"{exc}; its job will run again")
                continue
            found[payload.get("job_id") or path.stem] = payload
        return found

    # -- the run ---------------------------------------------------------------------------------------
    def execute(self) -> pd.DataFrame:
        from bench import provenance as prov
        from bench.aggregate import mean_rows
        from bench.executors import make_executor

        from bench.plan import recipe_notice

        cfg = self.cfg
        specs = self.plan()
        for line in recipe_notice(specs):  # the paper suite: whose recipe, and every deviation from it, first
            self.say(line)
        existing = self.existing_jobs() if (cfg.resume or cfg.eval_only or cfg.dry_run) else {}
        if cfg.dry_run:
            from bench.dryrun import describe_plan

            return describe_plan(specs, existing, cfg.out, quiet=self.quiet)
        if cfg.eval_only:
            specs = [self.for_eval_only(s, existing) for s in specs]
        reused = self.reusable(specs, existing) if cfg.resume else {}
        todo = [s for s in specs if s.job_id not in reused]
        executor = make_executor(cfg.executor, memory_mb=cfg.job_memory_mb, ray_address=cfg.ray_address)
        if todo:
            executor.prepare(todo)  # e.g. a Ray cluster that cannot run the jobs is refused before anything changes
        if not cfg.resume and not cfg.eval_only:
            self.clear_folder()
        cfg.out.mkdir(parents=True, exist_ok=True)
        self.provenance = prov.collect(self.device, self.threads, cfg.seed, cfg.argv, executor=cfg.executor)
        self.records_by_job: dict[str, list[dict]] = {job: payload["records"] for job, payload in reused.items()}
        self.order = [s.job_id for s in specs]
        self.write_results([])  # from now on results.json describes this run, however it ends
        started = time.perf_counter()
        progress = RunProgress(todo, reused=len(reused), quiet=self.quiet)

        def on_record(spec: JobSpec, record: dict) -> None:
            self.records_by_job.setdefault(spec.job_id, []).append(record)
            run_folder.write_job(cfg.out, spec.job_id, spec.to_dict(), self.records_by_job[spec.job_id],
                              self.provenance, complete=False)
            progress.record(spec, record)

        last_write = [time.perf_counter()]

        def on_done(spec: JobSpec) -> None:
            run_folder.write_job(cfg.out, spec.job_id, spec.to_dict(), self.records_by_job.get(spec.job_id, []),
                              self.provenance, complete=True)
            progress.done(spec)
            # The job files are the record of truth; results.json follows them at most every RESULTS_EVERY
            # seconds (on a large cluster rewriting it at every job end would occupy the driver) and at the end.
            if time.perf_counter() - last_write[0] >= RESULTS_EVERY:
                self.write_results(mean_rows(self.all_records()))
                last_write[0] = time.perf_counter()

        with progress:
            executor.run(todo, on_record, on_done, progress.update)
        self.provenance["run_seconds"] = time.perf_counter() - started
        records = self.all_records()
        frame = self.write_results(mean_rows(records))
        report_path = None
        if cfg.suite in ("all", "paper", "deploy"):
            try:
                report_path = report(cfg.out).get("report.html")
            except Exception as exc:  # the measurements are already on disk; say what broke and keep them
                self.say(f"report failed: {type(exc).__name__}: {exc} (re-render with `bench report {cfg.out}`)")
        if not self.quiet:
            from bench.summary import print_summary

            print_summary(frame, self.provenance, cfg.out, report_path)
        return frame

    def all_records(self) -> list[dict]:
        return [r for job in self.order for r in self.records_by_job.get(job, [])]

    def write_results(self, extra: list[dict]) -> pd.DataFrame:
        return run_folder.write_results(self.cfg.out, self.all_records() + extra, self.provenance)

    # -- resume, eval-only, fresh --------------------------------------------------------------------------
    def reusable(self, specs: list[JobSpec], existing: dict[str, dict]) -> dict[str, dict]:
        """Complete job files whose settings match a planned job; others with the same prefix are set aside."""
        from bench.plan import settings_difference

        wanted = {s.job_id: s for s in specs}
        by_prefix = {s.prefix: s for s in specs}
        reused = {}
        for job, payload in existing.items():
            if job in wanted:
                failed = any(r.get("status") == "failed" for r in payload.get("records", []))
                if payload.get("complete") and failed and self.cfg.retry_failed:
                    self.say(f"records/{job}.json: failed before; --retry-failed runs it again")
                elif payload.get("complete"):
                    reused[job] = payload
                else:
                    self.say(f"records/{job}.json: the job was interrupted; it runs again from scratch")
                continue
            prefix = job.rsplit("__", 1)[0]
            if prefix in by_prefix:
                spec = by_prefix[prefix]
                old = JobSpec.from_dict(payload["job"]).identity() if "job" in payload else {}
                self.say(f"records/{job}.json: made with other settings ({settings_difference(old, spec.identity())}); "
                         f"not reused, moved to superseded/")
                target = self.cfg.out / "superseded"
                target.mkdir(exist_ok=True)
                shutil.move(str(run_folder.job_file(self.cfg.out, job)), target / f"{job}.json")
        return reused

    def for_eval_only(self, spec: JobSpec, existing: dict[str, dict]) -> JobSpec:
        from dataclasses import replace

        from bench.jobs.accuracy import stage_name

        previous = {stage_name(r.get("train_minutes")): r for r in existing.get(spec.job_id, {}).get("records", [])
                    if r.get("status") == "ok" and r.get("variant", "torch-fp32") == "torch-fp32"}
        return replace(spec, mode="eval_only", previous=previous)

    def clear_folder(self) -> None:
        for name in RUN_OUTPUTS:
            path = self.cfg.out / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()

    def say(self, line: str) -> None:
        print(line, file=sys.stderr)


def report(run_dir: str | Path, out_dir: str | Path | None = None) -> dict:
    """Re-render figures and the HTML/Markdown report from RUN/results.json, measuring nothing."""
    from reports import render_report

    run_dir = Path(run_dir)
    if not (run_dir / "results.json").is_file():
        raise UsageError(f"{run_dir}: no results.json here (not a defectbench run directory)")
    try:
        return render_report(run_dir, Path(out_dir) if out_dir else None)
    except ResultsError as exc:  # refused before anything is written
        raise UsageError(str(exc)) from None


def exit_status(frame: pd.DataFrame) -> int:
    """0 when every job is ok (or skipped: a variant the device cannot do), 1 when any failed."""
    if "status" not in frame or frame.empty:
        return 0
    return 1 if (frame["status"] == "failed").any() else 0

