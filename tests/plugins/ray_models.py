"""A test model for the Ray executor, registered the way a user's plugin file registers its own.

tiny_killed: its forward sends SIGKILL to its own process, as the kernel's out-of-memory killer would: the
worker dies mid-task without a crash report. It reuses tiny_models.py's detector (loaded as a plugin too).
"""
import os
import signal
import sys
from pathlib import Path

from bench.plugins import load_plugin
from models.registry import register_model

tiny = sys.modules[load_plugin(Path(__file__).with_name("tiny_models.py"))]


class KilledNet(tiny.HeatNet):
    def forward(self, x):
        os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(x)


@register_model("tiny_killed", family="detector", paper="test", input_size=32)
def tiny_killed(image_size: int = 32, seed: int = 0) -> "tiny.TinyDetector":
    detector = tiny.TinyDetector(image_size, "ok", seed)
    detector.net = KilledNet("ok")
    return detector
