"""defectbench's measuring side: probes, runner, metrics, results files and the CLI."""
import os

# The CPU memory probe starts the PyTorch profiler; on a machine without a GPU its Kineto backend logs a
# spurious "gpuGetDeviceCount failed" ERROR line each time. Level 5 keeps it quiet (read when torch loads).
os.environ.setdefault("KINETO_LOG_LEVEL", "5")
# ... and the allocator warns on every profiled step that blocks allocated earlier cannot be attributed,
# which is expected (the probe measures the peak above the pre-step baseline). Set it to WARNING to see it.
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


def __getattr__(name: str):
    # `bench.run(...)` and `bench.report(...)` without importing torch for users of `bench.metrics` alone.
    if name in ("run", "report"):
        from bench import api

        return getattr(api, name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
