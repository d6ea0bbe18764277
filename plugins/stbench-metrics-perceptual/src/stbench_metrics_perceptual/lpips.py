"""LPIPS v0.1 with an AlexNet trunk: a plain module that loads torchvision- and lpips-format weights."""
import re
from pathlib import Path
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from stbench import FrameMetric, MetricContext, NotAvailable

from .weights import Unavailable, hub_checkpoint, installed_file, load_state_dict, load_strict, named_file

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet, as torch.hub caches it
LINEAR_FILE = "lpips/weights/v0.1/alex.pth"  # inside the lpips wheel
MIN_SIZE = 31  # smallest frame the AlexNet trunk's three max-pools accept
FRAMES_PER_PASS = 256  # bounds the memory of one trunk pass; the result does not depend on it


class AlexNetTrunk(nn.Module):
    """torchvision's ``AlexNet.features``, layer for layer, so its state dict keys
    (``features.0.weight`` ... ``features.10.bias``) load unchanged."""

    TAPS = (1, 4, 7, 9, 11)  # the five ReLU outputs LPIPS compares (relu1 ... relu5)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )

    def forward(self, x):
        taps = []
        for index, layer in enumerate(self.features[: self.TAPS[-1] + 1]):
            x = layer(x)
            if index in self.TAPS:
                taps.append(x)
        return taps


class LPIPSNet(nn.Module):
    """Learned perceptual distance (Zhang et al. 2018), v0.1: scaling layer, AlexNet trunk,
    unit-normalised features, squared differences weighted by 1x1 linear layers, spatial mean,
    summed over the five layers. Inputs are RGB in [-1, 1], ``[N, 3, H, W]``; output ``[N]``."""

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.trunk = AlexNetTrunk()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in self.CHANNELS)
        self.requires_grad_(False)
        self.eval()

    def load_trunk(self, path: Path):
        """ImageNet weights from a torchvision-format AlexNet checkpoint (the classifier is ignored)."""
        state = load_state_dict(path, "AlexNet")
        features = {k: v for k, v in state.items() if k.startswith("features.")}
        load_strict(self.trunk, features, path, "torchvision AlexNet")

    def load_linear(self, path: Path):
        """The v0.1 linear layers from the lpips file layout (``lin{k}.model.{i}.weight``)."""
        state = load_state_dict(path, "LPIPS linear-layer")
        weights = {}
        for key, value in state.items():
            match = re.fullmatch(r"lin(\d)\.model\.\d\.weight", key)
            if match:
                weights[f"{match[1]}.weight"] = value
        load_strict(self.lins, weights, path, "LPIPS v0.1 AlexNet linear-layer")

    @staticmethod
    def _unit(x, eps=1e-10):
        return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)

    def forward(self, x0, x1):
        n = x0.shape[0]
        taps = self.trunk((torch.cat([x0, x1]) - self.shift) / self.scale)
        distance = 0
        for lin, tap in zip(self.lins, taps):
            diff = (self._unit(tap[:n]) - self._unit(tap[n:])) ** 2
            distance = distance + lin(diff).mean(dim=(2, 3))
        return distance.view(n)


def to_rgb_unit(x: torch.Tensor, value_range) -> torch.Tensor:
    """``[N, C, H, W]`` native values -> RGB in [-1, 1]: clipped to the value range, grey repeated."""
    low, high = value_range
    x = (x.clamp(low, high) - low) * (2.0 / (high - low)) - 1.0
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def unsupported_frames(shape) -> Optional[str]:
    """Why LPIPS cannot score frames of this ``[B, T, C, H, W]`` shape, or None."""
    c, h, w = shape[2:]
    if c not in (1, 3):
        return f"lpips compares grey (C=1) or RGB (C=3) frames; these have C={c}"
    if min(h, w) < MIN_SIZE:
        return f"lpips needs frames of at least {MIN_SIZE}x{MIN_SIZE} for its AlexNet trunk; these are {h}x{w}"
    return None


class LPIPS(FrameMetric):
    """Mean LPIPS over clips and frames (lower is better); per-frame values for free."""

    unavailable_reason = None

    def __init__(self, name: str, context: MetricContext, net: LPIPSNet):
        self.net = net
        super().__init__(name, context)

    def update(self, pred, true):
        if self.unavailable_reason is None and pred.ndim == 5:
            self.unavailable_reason = unsupported_frames(pred.shape)
        if self.unavailable_reason is None:
            super().update(pred, true)

    @torch.no_grad()
    def frame_values(self, pred, true):
        b, t = pred.shape[:2]
        net = self.net.to(pred.device)
        x0 = to_rgb_unit(pred.flatten(0, 1).float(), self.context.value_range)
        x1 = to_rgb_unit(true.flatten(0, 1).float(), self.context.value_range)
        values = [net(x0[i:i + FRAMES_PER_PASS], x1[i:i + FRAMES_PER_PASS])
                  for i in range(0, x0.shape[0], FRAMES_PER_PASS)]
        return torch.cat(values).double().view(b, t)

    def compute(self):
        return {self.name: NotAvailable(self.unavailable_reason)} if self.unavailable_reason else super().compute()

    def per_frame(self):
        return None if self.unavailable_reason else super().per_frame()


def find_weights(options: Mapping):
    """(AlexNet trunk file, linear-layer file, why-missing) from options, environment, caches."""
    trunk = named_file(options, "lpips_alexnet", "STBENCH_LPIPS_ALEXNET") or hub_checkpoint(ALEXNET_FILE)
    linear = named_file(options, "lpips_linear", "STBENCH_LPIPS_LINEAR") or installed_file("lpips", LINEAR_FILE)
    missing = []
    if trunk is None:
        missing.append(f"no ImageNet AlexNet weights: name a torchvision {ALEXNET_FILE} with the metric option "
                       f"lpips_alexnet=PATH or STBENCH_LPIPS_ALEXNET, or put it in "
                       f"{Path(torch.hub.get_dir()) / 'checkpoints'}")
    if linear is None:
        missing.append("no LPIPS v0.1 linear weights: `pip install --no-deps lpips==0.1.4` "
                       "or name lpips/weights/v0.1/alex.pth with lpips_linear=PATH / STBENCH_LPIPS_LINEAR")
    return trunk, linear, "; ".join(missing) or None


def build_lpips(context: MetricContext, name: str = "lpips"):
    if context.value_range is None:
        return Unavailable(name, f"lpips needs a bounded value range; {context.dataset or 'this dataset'} "
                                 "is unbounded")
    trunk, linear, missing = find_weights(context.options)
    if missing:
        return Unavailable(name, missing)
    net = LPIPSNet()
    net.load_trunk(trunk)
    net.load_linear(linear)
    return LPIPS(name, context, net)
