"""Planning the deploy suite (`--suite deploy --checkpoints RUN_DIR`): the job specs that evaluate the deployment
variants of an earlier run's trained models on the same test sets, without retraining. Nothing is deployed or
measured here; the jobs run later like any other.

Each complete accuracy job of RUN_DIR becomes a deploy job: the same model, data, seed and stages, reading the
checkpoint each stage recorded, and evaluating torch-fp32 (the base) and every `--variants` entry through
`bench.jobs.accuracy` (mode "deploy"). Its identity adds the variants and the checkpoints' bytes.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bench import run_folder
from bench.config import RunConfig
from bench.jobs.accuracy import stage_name
from bench.jobs.spec import JobSpec
from bench.plan import file_digest, job_timeout_for
from bench.schema import ResultsError
from bench.validate import UsageError


def plan_deploy(cfg: RunConfig, names: list[str] | None, device: str, threads: int) -> list[JobSpec]:
    source = Path(cfg.checkpoints).resolve()
    specs = []
    variants = ["torch-fp32"] + [v for v in cfg.variants if v != "torch-fp32"]
    for path in run_folder.job_files(source):
        try:
            payload = run_folder.read_job(path)
        except ResultsError as exc:
            raise UsageError(f"--checkpoints: {exc}") from None
        job = payload.get("job") or {}
        if job.get("kind") != "accuracy" or not payload.get("complete"):
            continue
        if names and job.get("model") not in names:
            continue
        previous = {}
        for record in payload["records"]:
            if record.get("status") == "ok" and record.get("variant", "torch-fp32") == "torch-fp32" and record.get("checkpoint"):
                checkpoint = Path(record["checkpoint"])
                checkpoint = checkpoint if checkpoint.is_absolute() else source / checkpoint
                previous[stage_name(record.get("train_minutes"))] = dict(record, checkpoint_path=str(checkpoint))
        spec = JobSpec.from_dict(job)
        if not previous or any(stage_name(m) not in previous for m in spec.stages):
            continue  # a job with a failed stage has no checkpoint to deploy for it
        settings = dict(spec.settings, accuracy_variants=variants,
                        deployed_from={stage: {"checkpoint": str(p["checkpoint_path"]),
                                               "sha256": file_digest(p["checkpoint_path"])}
                                       for stage, p in sorted(previous.items())})
        specs.append(replace(spec, suite="deploy", run_dir=str(cfg.out), device=device, threads=threads,
                             settings=settings, mode="deploy", previous=previous, plugins=tuple(cfg.plugins),
                             timeout=job_timeout_for(cfg, "accuracy", ())))
    if not specs:
        raise UsageError(f"--checkpoints {cfg.checkpoints}: no finished accuracy job with checkpoints"
                         + (f" for {', '.join(names)}" if names else ""))
    return specs
