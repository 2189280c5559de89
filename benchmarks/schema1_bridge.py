"""INTERIM, experiment-only: rewrite a results schema 1 run (today's runner) as schema 2, so that `bench compare`
(which reads schema 2 only, and refuses schema 1 with exit 2) can be exercised before the restructured runner
lands. Delete this file, and its call in benchmarks/regress.sh, once `bench run` writes schema 2 itself.

What it does, and nothing more: each schema-1 profile record becomes a `torch-fp32` row and an `ort-fp32` row
(the `ort_*` columns moved to the variant's own `latency_*`/`reference_*`, `onnx_parity` -> `parity`), with
the model-level facts in both, as docs/design.md's schema 2 has them. Nothing is invented: fields that
schema 1 never measured (settings_hash, data_fingerprint, per-image scores, intervals) stay absent, so the
comparison says "not comparable" where it needs them. A schema-2 file is left as it is.

    python benchmarks/schema1_bridge.py RUN_DIR [RUN_DIR ...]     # rewrites RUN_DIR/results.json in place
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ORT_RENAMES = {"onnx_parity": "parity", "onnx_max_abs_diff": "parity_max_abs_diff",
               "onnx_rel_diff": "parity_rel_diff", "ort_provider": "provider"}
ORT_ONLY = ("onnx_mb", "onnx_files", *ORT_RENAMES)
VARIANT_LEVEL = ("latency_", "reference_", "throughput_", "peak_infer_mb", "achieved_gflops", "peak_fraction")


def _variant_rows(record: dict) -> list[dict]:
    shared = {k: v for k, v in record.items()
              if not k.startswith(("ort_", "onnx_")) and not k.startswith(VARIANT_LEVEL) and k not in ORT_ONLY}
    torch_row = dict(shared, variant="torch-fp32", runtime="torch", precision="fp32",
                     **{k: v for k, v in record.items() if k.startswith(VARIANT_LEVEL)})
    ort_row = dict(shared, variant="ort-fp32", runtime="onnxruntime", precision="fp32")
    for key, value in record.items():
        if key.startswith("ort_latency"):
            ort_row["latency" + key[len("ort_latency"):]] = value
        elif key.startswith("ort_reference"):
            ort_row["reference" + key[len("ort_reference"):]] = value
        elif key in ORT_RENAMES:
            ort_row[ORT_RENAMES[key]] = value
        elif key in ("onnx_mb", "onnx_files"):
            ort_row[key] = value
    for key in ("device_peak_gflops",):
        if key in record:
            ort_row[key] = record[key]
    has_ort = any(k.startswith(("ort_", "onnx_")) for k in record)
    return [torch_row, ort_row] if has_ort else [torch_row]


def convert(payload: dict) -> dict:
    if payload.get("schema") == 2:
        return payload
    if payload.get("schema") != 1:
        raise SystemExit(f"schema1_bridge: expected results schema 1, got {payload.get('schema')!r}")
    records = []
    for record in payload["records"]:
        if record.get("suite") == "profile":
            records.extend(_variant_rows(record))
        else:
            records.append(dict(record, variant="torch-fp32"))
    return {"schema": 2, "provenance": dict(payload["provenance"], bridged_from_schema=1), "records": records}


def main(paths: list[str]) -> None:
    for arg in paths:
        path = Path(arg)
        path = path / "results.json" if path.is_dir() else path
        payload = json.loads(path.read_text())
        path.write_text(json.dumps(convert(payload), indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
