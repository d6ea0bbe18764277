"""LPIPS v0.1 with an AlexNet trunk: a plain module that loads torchvision- and lpips-format weights."""
import re
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import torch
from torch import nn

from stbench import FrameMetric, MetricContext, NotAvailable, Unavailable, UserError

from .weights import (Found, Place, WeightSearch, file_sha256, home_cache, in_folder, installed_file,
                      load_state_dict, load_strict, provenance_of, torch_hub_dir, weight_entry)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's ImageNet AlexNet, as torch.hub caches it
ALEXNET_URL = "https://download.pytorch.org/models/" + ALEXNET_FILE
LINEAR_FILE = "lpips/weights/v0.1/alex.pth"  # inside the lpips wheel
TORCHMETRICS_LINEAR_FILE = "torchmetrics/functional/image/lpips_models/alex.pth"  # the same bytes
PYIQA_LINEAR_FILE = "LPIPS_v0.1_alex-df73285e.pth"  # the same bytes, as pyiqa caches them
LINEAR_SHA256 = "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0"
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
    """Mean LPIPS over clips and frames (lower is better); per-frame and per-clip values for free.

    ``files`` maps "trunk" / "linear" to the weight files loaded, for the record's provenance.
    """

    unavailable_reason = None

    def __init__(self, name: str, context: MetricContext, net: LPIPSNet, files: Optional[Dict[str, Found]] = None):
        self.net, self.files = net, dict(files or {})
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

    def per_clip(self):
        return None if self.unavailable_reason else super().per_clip()

    def provenance(self) -> Dict[str, str]:
        """``trunk_file`` / ``trunk_sha256`` / ``trunk_found_in`` and the same for ``linear_``."""
        record = {}
        for role, found in self.files.items():
            record.update(provenance_of(f"{role}_", found))
        return record


def _wheel(distribution: str, relative: str) -> Place:
    def paths():
        return [path for path in (installed_file(distribution, relative),) if path]
    return Place(f"{distribution} package", paths, when_absent=lambda: f"(not installed, or without {relative})")


TRUNK = WeightSearch(
    name=f"lpips AlexNet trunk ({ALEXNET_FILE}, torchvision's ImageNet AlexNet)",
    option="lpips_alexnet", env="STBENCH_LPIPS_ALEXNET",
    places=(Place("torch hub cache", in_folder(lambda: torch_hub_dir() / "checkpoints", ALEXNET_FILE)),),
    how_to_get=(f"torchvision (also through lpips, pyiqa or torchmetrics) downloads it on first use; or: "
                f"curl -L --create-dirs -o {{hub}}/checkpoints/{ALEXNET_FILE} {ALEXNET_URL} "
                "(or name a copy with --metric-option lpips_alexnet=PATH / STBENCH_LPIPS_ALEXNET)"),
    published_sha256="7be5be79",  # torch.hub names its files by their sha256 prefix
)

LINEAR = WeightSearch(
    name="lpips v0.1 linear layers (alex.pth)",
    option="lpips_linear", env="STBENCH_LPIPS_LINEAR",
    places=(
        _wheel("lpips", LINEAR_FILE),
        _wheel("torchmetrics", TORCHMETRICS_LINEAR_FILE),
        # pyiqa's cache moved twice: <hub>/pyiqa from 0.1.13, ~/.cache/pyiqa in 0.1.12, <hub>/checkpoints before
        Place("pyiqa cache", in_folder(lambda: torch_hub_dir() / "pyiqa", PYIQA_LINEAR_FILE)),
        Place("pyiqa cache (pyiqa 0.1.12)", in_folder(lambda: home_cache("pyiqa"), PYIQA_LINEAR_FILE)),
        Place("pyiqa cache (pyiqa before 0.1.12)", in_folder(lambda: torch_hub_dir() / "checkpoints",
                                                              PYIQA_LINEAR_FILE)),
    ),
    how_to_get=("pip install --no-deps lpips==0.1.4 (ships lpips/weights/v0.1/alex.pth; --no-deps: its "
                "torchvision requirement is never imported), or have torchmetrics or pyiqa installed and used "
                "(same file), or name it with --metric-option lpips_linear=PATH / STBENCH_LPIPS_LINEAR"),
    published_sha256=LINEAR_SHA256,
)


def find_weights(options: Mapping):
    """(AlexNet trunk, linear layers, why-missing): the first file each search finds."""
    trunk = next(iter(TRUNK.candidates(options)), None)
    linear = next(iter(LINEAR.candidates(options)), None)
    missing = []
    if trunk is None:
        missing.append(f"no ImageNet AlexNet weights: put {ALEXNET_URL} into {torch_hub_dir() / 'checkpoints'} "
                       "(torchvision does so on first use) or name a copy with lpips_alexnet=PATH / "
                       "STBENCH_LPIPS_ALEXNET")
    if linear is None:
        missing.append("no LPIPS v0.1 linear weights: pip install --no-deps lpips==0.1.4 (or have torchmetrics or "
                       "pyiqa's cache), or name alex.pth with lpips_linear=PATH / STBENCH_LPIPS_LINEAR")
    return trunk, linear, "; ".join(missing) or None


def weight_files(options: Mapping) -> List[Dict]:
    """The trunk and linear-layer files LPIPS would use now, or what is missing (never raises)."""
    entries = []
    for search in (TRUNK, LINEAR):
        try:
            chosen, problem = next(iter(search.candidates(options)), None), None
        except UserError as error:  # a named file that is not there: report it, as build would
            chosen, problem = None, str(error)
        entries.append(weight_entry(search, options, chosen, [problem]))
    return entries


def build_lpips(context: MetricContext, name: str = "lpips"):
    if context.value_range is None:
        return Unavailable(name, f"lpips needs a bounded value range; {context.dataset or 'this dataset'} "
                                 "is unbounded")
    trunk, linear, missing = find_weights(context.options)
    if missing:
        return Unavailable(name, missing)
    net = LPIPSNet()
    for found, load, search in ((trunk, net.load_trunk, TRUNK), (linear, net.load_linear, LINEAR)):
        file_sha256(found.path)  # hashed as loaded, once per file and process
        try:
            load(found.path)
        except UserError as error:
            if found.named:  # the user's own choice of file: their mistake to fix
                raise
            return Unavailable(name, f"{error} (found in the {found.found_in}; replace or delete it, or name "
                                     f"another file with {search.option}=PATH / {search.env})")
    return LPIPS(name, context, net, files={"trunk": trunk, "linear": linear})
