"""Deployment variants: the same trained graph run the ways it would be deployed, each with its cost and its
accuracy cost (issue 12).

Public API (the runner's entry points first):
- `profile_variants(module, example, variants, settings, *, batch_sizes=None, calibration_images=None,
  gmacs=None, peaks=None, rounds=1) -> list[dict]`: a profile job's variant records.
- `evaluate_variants(detector, test_set, variants, settings, *, batch_size, calibration_images=None)
  -> Iterator[VariantEvaluation]`, `evaluate_variant(variant, test_set, batch_size)`,
  `accuracy_deltas(base_eval, variant_eval) -> dict`: an accuracy job's variant rows.
- `prepare_variant(name, module, example, settings, *, exports=None, calibration_images=None)
  -> PreparedVariant`, `variant_probe(...)`, `batch_sweep(...)`: the building blocks.
- `parse_variants(text)`, `VARIANTS`, `DEFAULT_VARIANTS`: the table and `--variants`.
- `measure_peaks(device)`, `math_mode(device)`, `cpu_flags()`: for the provenance.
- `calibration_images_from(train_set)`: the static quantiser's calibration images.

Record columns of a variant row (besides the job's common columns):
- `variant`, `batch_size`, `status` (ok | skipped | failed), `error` (the reason or the cause);
- `runtime` (torch | onnxruntime), `provider` (torch-cpu, torch-cuda, or the ONNX Runtime execution
  provider the session actually got), `precision` (fp32 | tf32 | bf16 | fp16 | int8), `math_mode` (how the
  variant computes: TF32 on or off, autocast dtype, bf16 native or emulated, inductor, CUDA graphs, the
  quantisation format);
- `latency_ms_p50/p90/p99/mean`, `latency_iqr_ratio`, `latency_n`, `latency_samples_ms` and whatever else
  bench.measure.measure_latency returns (one batch of `batch_size` images); `latency_rounds` (interleaved
  rounds pooled);
- `throughput_ips`, `throughput_batch`: images per second at `settings.throughput_batch` on the variant's
  main row (batch / p50 of the latency calls when that is the example's batch, as in the quick suite; empty
  when `settings.throughput` is off); at `batch_size` (batch / p50) on batch-sweep rows;
- `peak_infer_mb`: resident parameters and buffers + the allocator's measured peak during one call (torch:
  bench.measure.measure_peak_bytes; CUDA graphs: the graph's private pool, since a replay allocates nothing);
  empty for ONNX Runtime, which exposes no allocation peak (a process RSS would mix in PyTorch's memory);
- `onnx_mb`, `onnx_files`: the files of the variant's own graph (ONNX Runtime variants);
  `onnx_export_seconds` (the shared fp32 export), `quantisation` (int8 settings), `prepare_seconds`;
- `compile_seconds`: torch.compile variants, the calls until the steady state (see torch_variants.py);
- `parity_max_abs_diff`, `parity_rel_diff`, `parity_p99_abs_diff`, `parity` (pass | fail),
  `parity_tolerance` (the rtol of the variant's precision; see parity.py): against torch-fp32 on the same
  input; empty on torch-fp32's row;
- `achieved_gflops`, `best_kernel_ratio`, `best_kernel_gflops`, `best_kernel`: the achieved rate against the
  best calibration kernel measured in the same run for the variant's precision (the larger of fp32's and its
  own), and which kernel that was; a ratio, not a fraction of the hardware's peak: it can exceed 1 (peaks.py);
- `notes`: e.g. an out-of-memory at the throughput batch.
"""
from bench.variants.base import PreparedVariant, VariantUnavailable
from bench.variants.evaluate import VariantEvaluation, accuracy_deltas, evaluate_variant, evaluate_variants
from bench.variants.mathmode import cpu_flags, math_mode
from bench.variants.parity import PARITY_RTOL, parity
from bench.variants.peaks import measure_peak, measure_peaks, roofline_for
from bench.variants.probe import profile_variants, variant_probe
from bench.variants.quantise import calibration_images_from
from bench.failures import is_out_of_memory
from bench.variants.sweep import batch_sweep
from bench.variants.table import (CPU_VARIANTS, CUDA_VARIANTS, DEFAULT_VARIANTS, REFERENCE_VARIANT, VARIANTS,
                                  parse_variants, prepare_variant)

__all__ = [
    "CPU_VARIANTS", "CUDA_VARIANTS", "DEFAULT_VARIANTS", "PARITY_RTOL", "REFERENCE_VARIANT", "VARIANTS",
    "PreparedVariant", "VariantEvaluation", "VariantUnavailable", "accuracy_deltas", "batch_sweep",
    "calibration_images_from", "cpu_flags", "evaluate_variant", "evaluate_variants", "is_out_of_memory",
    "math_mode", "measure_peak", "measure_peaks", "parity", "parse_variants", "prepare_variant",
    "profile_variants", "roofline_for", "variant_probe",
]
