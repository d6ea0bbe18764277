"""Frechet Video Distance over the whole test set, from streaming I3D feature statistics."""
from typing import Mapping, Optional

import torch
import torch.nn.functional as F

from stbench import Metric, MetricContext, NotAvailable

from .i3d import load_i3d
from .weights import Unavailable, hub_checkpoint, named_file

I3D_FILES = ("i3d_torchscript.pt", "i3d_pretrained_400.pt")
I3D_SIZE = 224
MIN_FRAMES = 10  # shorter clips are padded by repeating their last frame (I3D's pooling needs ~10)
CLIPS_PER_PASS = 8  # bounds the memory of one I3D pass; the result does not depend on it


class GaussianStats:
    """Running mean and scatter matrix of feature rows, merged batch by batch (Chan et al.), in float64;
    the features themselves are never kept."""

    def __init__(self):
        self.count, self.mean, self.scatter = 0, None, None

    def add(self, rows: torch.Tensor):
        rows = rows.detach().to("cpu", torch.float64)
        n = rows.shape[0]
        if n == 0:
            return
        mean = rows.mean(dim=0)
        centred = rows - mean
        scatter = centred.T @ centred
        if self.count == 0:
            self.count, self.mean, self.scatter = n, mean, scatter
            return
        total = self.count + n
        delta = mean - self.mean
        self.scatter = self.scatter + scatter + torch.outer(delta, delta) * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.count = total

    def covariance(self) -> torch.Tensor:
        return self.scatter / (self.count - 1)


def _psd_eigenvalues(matrix):
    """Eigen-decomposition of a symmetric PSD matrix with rounding noise (eigenvalues below the
    usual rank tolerance, negative ones included) set to 0: square roots would amplify it."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    tolerance = values.abs().max() * matrix.shape[0] * torch.finfo(values.dtype).eps
    return torch.where(values > tolerance, values, 0.0), vectors


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` for two Gaussians.

    ``Tr((S1 S2)^(1/2))`` is the sum of square roots of the eigenvalues of the symmetric
    ``S1^(1/2) S2 S1^(1/2)``, which has the same spectrum as ``S1 S2``: no complex sqrtm needed.
    Feature covariances of fewer clips than dimensions are singular; that is fine here.
    """
    mu1, mu2, cov1, cov2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, cov1, cov2))
    values, vectors = _psd_eigenvalues(cov1)
    root = (vectors * values.sqrt()) @ vectors.T
    trace_sqrt = _psd_eigenvalues(root @ cov2 @ root)[0].sqrt().sum()
    diff = mu1 - mu2
    distance = diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt
    return max(float(distance), 0.0)  # >= 0 exactly; rounding can leave -1e-12


def to_i3d_clips(video: torch.Tensor, value_range) -> torch.Tensor:
    """``[B, T, C, H, W]`` native values -> ``[B, 3, max(T, 10), 224, 224]`` RGB in [-1, 1]:
    clipped to the value range, bilinear resize, last frame repeated up to 10 frames, grey repeated."""
    b, t, c, h, w = video.shape
    low, high = value_range
    x = (video.float().clamp(low, high) - low) * (2.0 / (high - low)) - 1.0
    if t < MIN_FRAMES:
        x = torch.cat([x, x[:, -1:].expand(-1, MIN_FRAMES - t, -1, -1, -1)], dim=1)
    frames = F.interpolate(x.flatten(0, 1), size=(I3D_SIZE, I3D_SIZE), mode="bilinear", align_corners=False)
    clips = frames.view(b, -1, c, I3D_SIZE, I3D_SIZE).transpose(1, 2)
    return clips.expand(-1, 3, -1, -1, -1) if c == 1 else clips


class FVD(Metric):
    """FVD between the predicted and the true clips of the whole test set (lower is better).

    Scores the ``T_out`` predicted frames (the observed ones are the same in both sets). A set-level
    metric: no per-frame values.
    """

    unavailable_reason: Optional[str] = None

    def __init__(self, name: str, context: MetricContext, extractor: torch.nn.Module):
        self.name, self.context, self.extractor = name, context, extractor
        self.reset()

    def reset(self):
        self.real, self.fake = GaussianStats(), GaussianStats()

    @torch.no_grad()
    def _features(self, video):
        net = self.extractor.to(video.device)
        return torch.cat([net(to_i3d_clips(video[i:i + CLIPS_PER_PASS], self.context.value_range))
                          for i in range(0, video.shape[0], CLIPS_PER_PASS)])

    def update(self, pred, true):
        if pred.shape != true.shape or pred.ndim != 5:
            raise ValueError(f"{self.name}: pred {tuple(pred.shape)} and true {tuple(true.shape)} "
                             "must both be [B, T, C, H, W]")
        if self.unavailable_reason is None and pred.shape[2] not in (1, 3):
            self.unavailable_reason = f"fvd compares grey (C=1) or RGB (C=3) clips; these have C={pred.shape[2]}"
        if self.unavailable_reason is None:
            self.fake.add(self._features(pred))
            self.real.add(self._features(true))

    def compute(self):
        if self.unavailable_reason is None and self.real.count < 2:
            self.unavailable_reason = f"fvd needs at least 2 clips to estimate a covariance; got {self.real.count}"
        if self.unavailable_reason:
            return {self.name: NotAvailable(self.unavailable_reason)}
        return {self.name: frechet_distance(self.real.mean, self.real.covariance(),
                                            self.fake.mean, self.fake.covariance())}


def find_i3d(options: Mapping):
    named = named_file(options, "fvd_i3d", "STBENCH_FVD_I3D")
    return named or next((path for path in map(hub_checkpoint, I3D_FILES) if path), None)


def build_fvd(context: MetricContext, name: str = "fvd"):
    if context.value_range is None:
        return Unavailable(name, f"fvd needs a bounded value range; {context.dataset or 'this dataset'} is unbounded")
    path = find_i3d(context.options)
    if path is None:
        return Unavailable(name, "no I3D weights: name i3d_pretrained_400.pt (pytorch-i3d state dict) or "
                                 "i3d_torchscript.pt (stylegan-v) with the metric option fvd_i3d=PATH or "
                                 "STBENCH_FVD_I3D")
    return FVD(name, context, load_i3d(path))
