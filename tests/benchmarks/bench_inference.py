"""Inference time of every registered model with pytest-benchmark's `benchmark` fixture (`make bench-pytest`).

One image of 64x64 (or the model's own input size where that is smaller), batch 1, on the CPU with
DEFECTBENCH_BENCH_THREADS threads (default 1). Compare two saved runs with
`bench compare OLD.json NEW.json` (saved with --benchmark-json, or --benchmark-save-data).
"""
from __future__ import annotations

import pytest
import torch

from models import create_detector, get_entry, list_models

SIZE = 64


@pytest.mark.parametrize("name", [e.name for e in list_models()])
def test_inference(name, timed_with_reference):
    size = min(SIZE, get_entry(name).input_size)
    torch.manual_seed(0)
    module = create_detector(name, image_size=size).inference_module().eval()
    x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    timed_with_reference(lambda: module(x))
