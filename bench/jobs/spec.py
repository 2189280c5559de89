"""A job spec: one unit of work as plain, serialisable data, and its identity.

A job's identity covers every setting that changes its result (sizes, seed, threads, device, epochs, schedule,
stages, probe settings, variants, `--model-arg`, the bytes of weight and plugin files ...): `settings_hash`.
Its `job_id` is a readable prefix plus the first 10 hex digits of that hash, so `--resume` reuses a record only
when it was made with the same settings, and two suites that measure differently never share an id. The
planner makes the specs (bench/plan.py); the jobs execute them (bench/jobs/), in whatever process.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

HASH_DIGITS = 10


@dataclass(frozen=True)
class JobSpec:
    """One unit of work. `kind` is `profile` (one model's cost, one record per variant and batch size) or
    `accuracy` (one model trained on one category with one seed, one record per stage and variant)."""

    kind: str
    suite: str
    model: str
    family: str
    device: str
    threads: int
    seed: int
    image_size: int
    batch_size: int
    run_dir: str
    dataset: str = ""
    data_root: str = ""
    category: str = ""
    stages: tuple = ()  # minutes after which to evaluate; None = until the epoch budget
    settings: dict = field(default_factory=dict)  # everything else that changes the result
    plugins: tuple = ()  # plugin files every worker imports before running the job
    timeout: float = math.inf  # seconds; the executor kills the job after this
    mode: str = "train"  # or "eval_only": evaluate the checkpoints the same job wrote before
    previous: dict = field(default_factory=dict)  # eval_only: stage name -> the training facts recorded then

    def identity(self) -> dict:
        """What the result depends on (the run folder, the timeout and plugin paths do not change it)."""
        keep = asdict(self)
        for key in ("run_dir", "timeout", "plugins", "suite", "data_root", "mode", "previous"):  # data: settings["data"]
            keep.pop(key)
        return keep

    @property
    def settings_hash(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def prefix(self) -> str:
        """The readable part of the id: what a user looks for in `records/`."""
        from bench.run_folder import job_id

        if self.kind == "profile":
            return job_id("profile", self.model, f"{self.image_size}px", f"b{self.batch_size}", self.device)
        return job_id("accuracy", self.model, self.dataset, self.category or "root", f"{self.image_size}px",
                      f"seed{self.seed}")

    @property
    def job_id(self) -> str:
        return f"{self.prefix}__{self.settings_hash[:HASH_DIGITS]}"

    def base_record(self) -> dict:
        """The keys every record of this job starts with."""
        record = {"job_id": self.job_id, "settings_hash": self.settings_hash[:HASH_DIGITS], "suite": self.kind,
                  "model": self.model, "family": self.family, "variant": "torch-fp32", "dataset": self.dataset,
                  "category": self.category, "device": self.device, "image_size": self.image_size,
                  "batch_size": self.batch_size, "threads": self.threads, "seed": self.seed}
        record["settings"] = dict(self.settings)
        # whose recipe the job ran (models/recipes.py): the authors' in the paper suite, with what still differs
        record["recipe"] = self.settings.get("recipe", "project")
        record["recipe_deviations"] = list(self.settings.get("recipe_deviations", []))
        return record

    def outputs(self) -> list[dict]:
        """One stub per record the job is expected to write: what a failed job's records are made of."""
        variants = self.settings.get("variants") or ["torch-fp32"]
        if self.kind == "profile":
            return [{"variant": v} for v in variants]
        accuracy_variants = self.settings.get("accuracy_variants") or ["torch-fp32"]
        return [{"train_minutes": m, "variant": v} for m in self.stages for v in accuracy_variants]

    def to_dict(self) -> dict:
        data = asdict(self)
        data["stages"] = list(self.stages)
        data["plugins"] = list(self.plugins)
        data["timeout"] = None if math.isinf(self.timeout) else self.timeout
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "JobSpec":
        data = dict(data)
        data["stages"] = tuple(data.get("stages") or ())
        data["plugins"] = tuple(data.get("plugins") or ())
        data["timeout"] = math.inf if data.get("timeout") is None else float(data["timeout"])
        return cls(**data)
