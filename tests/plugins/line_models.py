"""A model of known service time for the line scenario's tests, registered as a user's plugin file registers one.

line_sleep: its forward sleeps `service_ms` per call plus `per_image_ms` per image of the batch, then returns a
zero score and a zero map per image. Sleeping, not spinning: the service time does not depend on how fast or busy
the CPU is, so what queueing theory predicts from it can be checked on a shared machine.
"""
import time

import torch
from torch import nn

from models.base import Detector
from models.registry import register_model


class SleepNet(nn.Module):
    def __init__(self, service_ms: float, per_image_ms: float):
        super().__init__()
        self.service_s = service_ms / 1e3
        self.per_image_s = per_image_ms / 1e3

    def forward(self, x):
        time.sleep(self.service_s + self.per_image_s * x.shape[0])
        maps = torch.zeros(x.shape[0], x.shape[-2], x.shape[-1])
        return maps.flatten(1).amax(1), maps


class SleepDetector(Detector):
    name = "line_sleep"

    def __init__(self, image_size: int, service_ms: float = 20.0, per_image_ms: float = 0.0):
        super().__init__(image_size)
        self.net = SleepNet(service_ms, per_image_ms)

    def modules_to_save(self):
        return {"net": self.net}

    def inference_module(self):
        return self.net

    def training_step(self, images, masks, optimizer):
        return 0.0


@register_model("line_sleep", family="detector", paper="test: sleeps a known time", input_size=32)
def line_sleep(image_size: int = 32, service_ms: float = 20.0, per_image_ms: float = 0.0) -> SleepDetector:
    return SleepDetector(image_size, service_ms, per_image_ms)
