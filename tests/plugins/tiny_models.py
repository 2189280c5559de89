"""Test models, registered the way a user's plugin file registers its own (`bench run --plugin FILE`).

Each misbehaves in one known way, so the runner's isolation can be checked against a known cause:
tiny_ok (well behaved), tiny_broken (refuses ONNX export), tiny_abort (os.abort() in its forward),
tiny_sleep (sleeps in its forward), tiny_hog (allocates 4 GB in its forward).
"""
import os
import time

import torch
from torch import nn

from models.base import Detector
from models.registry import register_model


class HeatNet(nn.Module):
    def __init__(self, behaviour: str = "ok"):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 1, 1)
        self.behaviour = behaviour

    def forward(self, x):
        if self.behaviour == "broken" and torch.compiler.is_exporting():
            raise RuntimeError("this model refuses to export")
        if self.behaviour == "abort":
            os.abort()
        if self.behaviour == "sleep":
            time.sleep(60)
        if self.behaviour == "hog":
            torch.ones(2**30)  # 4 GB of float32
        heat = torch.sigmoid(self.head(torch.relu(self.conv(x))))[:, 0]
        return heat.flatten(1).amax(1), heat


class TinyDetector(Detector):
    name = "tiny"

    def __init__(self, image_size: int, behaviour: str = "ok", seed: int = 0):
        super().__init__(image_size)
        torch.manual_seed(seed)
        self.net = HeatNet(behaviour)

    def modules_to_save(self):
        return {"net": self.net}

    def inference_module(self):
        return self.net

    def training_step(self, images, masks, optimizer):
        optimizer.zero_grad()
        _, heat = self.net(images)
        loss = nn.functional.binary_cross_entropy(heat, masks)
        loss.backward()
        optimizer.step()
        return float(loss.detach())


def _register(behaviour: str) -> None:
    @register_model(f"tiny_{behaviour}", family="detector", paper="test", input_size=32)
    def build(image_size: int = 32, seed: int = 0) -> TinyDetector:
        return TinyDetector(image_size, behaviour, seed)


for _behaviour in ("ok", "broken", "abort", "sleep", "hog"):
    _register(_behaviour)
