"""Statistics for judging measurements, each named after its textbook name and checked by simulation
(tests/test_stats.py). No defectbench types here: numpy arrays in, numbers out.
"""
from __future__ import annotations

import numpy as np

# -- accuracy: bootstrap intervals and DeLong's test ------------------------------------------------------


# -- latency: rank tests and effect sizes ----------------------------------------------------------------
