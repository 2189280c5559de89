"""One side of an A/B run (`bench ab`): a process started in ITS checkout, so every job it runs imports that
side's code, and it plans the jobs with that side's own planner from the same `bench run` options.

The driver (bench/ab/driver.py) talks to it in JSON lines: we answer on the stdout we were started with;
everything a job prints goes to stderr (the driver keeps it in a log).

    we send     {"protocol": 1, "plan": [{"prefix", "job_id", "kind", "model", "timeout", "failed"}...],
                 "unknown_models": [...], "git_sha": ..., "source": ...}
                or {"protocol": 1, "error": "one line"}, and exit 2
    driver      {"run": PREFIX, "out": DIR}  -> we run that job here, write DIR/records/<job_id>.json as its
                                               records arrive, answer {"done": PREFIX, "statuses": [...],
                                               "seconds": S}
    driver      {"finish": [DIR, ...]}       -> we write each DIR/results.json (records and the means, like
                                               `bench run`), answer {"finished": true} and exit 0

Jobs run in this process one after another (the inline executor): the side is already a process of its own
with its own code, and reusing it keeps torch's import out of every job. A crash of the side is the
driver's to record (it knows each job's expected records from `failed`).
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench.ab.sources import PROTOCOL


def _channel():
    """Our stdout for messages, and fd 1 pointed at stderr for everything else."""
    stream = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(message: dict) -> None:
        stream.write(json.dumps(dict(message, protocol=PROTOCOL), default=str) + "\n")
        stream.flush()

    return send


def read_options(args: list[str]):
    """`bench run`'s options as this side's CLI reads them -> this side's RunConfig."""
    import typer.main

    from bench import cli

    command = typer.main.get_command(cli.app).commands["run"]
    context = command.make_context("run", list(args))
    return cli.run_config(**context.params, argv=["bench", "run", *args])


def known_models(cfg) -> tuple[list[str] | None, list[str]]:
    """The models asked for that this side registers, and those it does not (a model added since BASE)."""
    from bench.plugins import load_plugins
    from models import list_models

    if not cfg.models:
        return None, []
    load_plugins(cfg.plugins)
    names = {e.name for e in list_models()}
    return [m for m in cfg.models if m in names], [m for m in cfg.models if m not in names]


class Side:
    """The planned jobs and, per output folder, the records written so far and the provenance."""

    def __init__(self, args: list[str]):
        from bench import api

        cfg = read_options(args)
        keep, self.unknown = known_models(cfg)
        if self.unknown:
            if not keep:
                raise ValueError(f"none of the models asked for is registered here: {', '.join(self.unknown)}")
            cfg = replace(cfg, models=keep)
        self.cfg = cfg
        self.run = api.Run(cfg, quiet=True)
        self.specs = {spec.prefix: spec for spec in self.run.plan()}
        self.folders: dict[str, dict] = {}

    def plan_message(self) -> dict:
        from bench.executors import failure_records
        from bench.provenance import git_sha

        jobs = []
        for prefix, spec in self.specs.items():
            stubs = failure_records(spec, [], "the side process died during this job")
            jobs.append({"prefix": prefix, "job_id": spec.job_id, "kind": spec.kind, "model": spec.model,
                         "timeout": None if spec.timeout == float("inf") else spec.timeout, "failed": stubs})
        return {"plan": jobs, "unknown_models": self.unknown, "git_sha": git_sha(),
                "source": str(Path(__file__).resolve().parents[2])}

    def folder(self, out: str) -> dict:
        if out not in self.folders:
            from bench import provenance as prov

            Path(out).mkdir(parents=True, exist_ok=True)
            provenance = prov.collect(self.run.device, self.run.threads, self.cfg.seed, self.cfg.argv,
                                      executor="inline")
            self.folders[out] = {"provenance": provenance, "records": {}, "order": [], "started": time.perf_counter()}
        return self.folders[out]

    def run_job(self, prefix: str, out: str) -> dict:
        from bench import run_folder
        from bench.executors.inline import InlineExecutor

        state = self.folder(out)
        spec = replace(self.specs[prefix], run_dir=out)
        state["order"].append(spec.job_id)
        produced = state["records"].setdefault(spec.job_id, [])
        started = time.perf_counter()

        def on_record(spec, record):
            produced.append(record)
            run_folder.write_job(Path(out), spec.job_id, spec.to_dict(), produced, state["provenance"], complete=False)

        def on_done(spec):
            run_folder.write_job(Path(out), spec.job_id, spec.to_dict(), produced, state["provenance"], complete=True)

        InlineExecutor().run([spec], on_record, on_done, lambda spec, text: None)
        return {"done": prefix, "statuses": [r.get("status", "ok") for r in produced],
                "seconds": time.perf_counter() - started}

    def finish(self, outs: list[str]) -> None:
        from bench import run_folder
        from bench.aggregate import mean_rows

        for out in outs:
            state = self.folder(out)
            records = [r for job in state["order"] for r in state["records"].get(job, [])]
            state["provenance"]["run_seconds"] = time.perf_counter() - state["started"]
            run_folder.write_results(Path(out), records + mean_rows(records), state["provenance"])


def main(args: list[str]) -> int:
    send = _channel()
    try:
        side = Side(args)
    except SystemExit as exc:  # click's own usage errors
        send({"error": f"bad options for `bench run` here (exit {exc.code})"})
        return 2
    except Exception as exc:  # bad options, a results schema this side refuses, a missing dependency
        from bench.failures import first_line

        send({"error": first_line(exc)})
        return 2
    send(side.plan_message())
    for line in sys.stdin:
        message = json.loads(line)
        if "run" in message:
            send(side.run_job(message["run"], message["out"]))
        elif "finish" in message:
            side.finish(message["finish"])
            send({"finished": True})
            break
    sys.stderr.flush()
    os._exit(0)  # no interpreter teardown of torch (about a second)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
