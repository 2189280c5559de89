"""Parity of a variant against `torch-fp32` on the same input, with a tolerance per precision.

The rule is the PyTorch ONNX tutorial's rtol/atol test with the relative part taken against an output's
scale (a pointwise relative test fails on values near zero), each output on its own scale (scores and maps
can differ in scale by orders of magnitude, e.g. VT-ADL's NLL scores against its maps): a variant passes
when, for every output i, max|variant_i - fp32_i| <= PARITY_ATOL + rtol(precision) x max|fp32_i|.

rtol per precision. fp32 keeps the PyTorch ONNX tutorial's 1e-3 (another runtime or a fused kernel reorders
sums). A reduced precision cannot meet that: its rounding error alone is of the order of its unit roundoff
u, and it adds up over the layers. The threshold is 16 u, fixed before any model was measured:
  tf32 and fp16: 10 stored mantissa bits, u = 2^-11, rtol = 16 u = 7.8e-3;
  bf16: 7 stored mantissa bits, u = 2^-8, rtol = 16 u = 6.25e-2;
  int8: 256 levels over the calibrated range, step 1/255 of the range, rtol = 16/255 = 6.3e-2.
`parity_p99_abs_diff` (the 99th percentile of |variant - fp32| over the elements of each output, max over
outputs) tells a few flipped pixels from a systematic error: near a sigmoid's steep part, or where an
untrained network's activations are large, a reduced precision can move single map values by most of their
range while the bulk stays close.
Parity is a sanity check that the variant computes the same function (a wrong layout, a dropped op or a
collapsed quantisation range fails it by far more); what the rounding does to the verdicts is measured by
the accuracy deltas, not by this threshold.
"""
from __future__ import annotations

import math

import numpy as np

from bench.variants.base import Outputs

PARITY_ATOL = 1e-5
PARITY_RTOL = {
    "fp32": 1e-3,
    "tf32": 16 * 2.0**-11,
    "fp16": 16 * 2.0**-11,
    "bf16": 16 * 2.0**-8,
    "int8": 16 / 255,
}


def parity(reference: Outputs, outputs: Outputs, precision: str) -> dict:
    """`parity_max_abs_diff` (max over outputs), `parity_rel_diff` (max over outputs of max|diff| / max|ref|),
    `parity_p99_abs_diff`, `parity` (pass | fail) and `parity_tolerance` (the rtol applied). Non-finite
    outputs fail."""
    if precision not in PARITY_RTOL:
        raise ValueError(f"no parity tolerance for precision {precision!r}")
    if len(reference) != len(outputs):
        raise RuntimeError(f"the variant gives {len(outputs)} outputs, torch-fp32 {len(reference)}")
    rtol = PARITY_RTOL[precision]
    max_abs, max_rel, p99, passed = 0.0, 0.0, 0.0, True
    for ref_t, out_t in zip(reference, outputs):
        ref = ref_t.detach().float().cpu().numpy()
        out = out_t.detach().float().cpu().numpy()
        if ref.shape != out.shape:
            raise RuntimeError(f"output shape {tuple(out.shape)} differs from torch-fp32's {tuple(ref.shape)}")
        if ref.size == 0:
            continue
        abs_diff = np.abs(ref - out)
        diff = float(np.max(abs_diff))
        if not math.isfinite(diff):
            return {"parity_max_abs_diff": math.nan, "parity_rel_diff": math.nan, "parity_p99_abs_diff": math.nan,
                    "parity": "fail", "parity_tolerance": rtol}
        p99 = max(p99, float(np.percentile(abs_diff, 99)))
        scale = float(np.max(np.abs(ref)))
        max_abs = max(max_abs, diff)
        max_rel = max(max_rel, diff / scale if scale > 0 else diff)
        passed &= diff <= PARITY_ATOL + rtol * scale
    return {"parity_max_abs_diff": max_abs, "parity_rel_diff": max_rel, "parity_p99_abs_diff": p99,
            "parity": "pass" if passed else "fail", "parity_tolerance": rtol}


def reference_outputs(outputs: Outputs) -> Outputs:
    """A detached CPU float32 copy of torch-fp32's outputs, kept while the other variants run."""
    return tuple(t.detach().float().cpu().clone() for t in outputs)

