"""Ensemble metrics for stochastic models (K samples per clip), as WeatherBench 2 defines them: CRPS in its
ensemble ("fair") form and the spread / skill ratio. Both average over pixels (C x H x W); the latitude-weighted
forms belong to the weather plugin."""
from abc import abstractmethod
from typing import Dict, List, Optional, Union

import torch

from ..specs import NotAvailable
from .base import Metric, MetricContext


class _Ensemble(Metric):
    """Per-frame sums of a pixel-averaged ensemble quantity; subclasses say which quantities and how they end."""

    ensemble = True
    parts = ("value",)

    def __init__(self, name: str, context: MetricContext):
        self.name, self.context = name, context
        self.reset()

    def reset(self):
        self._sums: Optional[torch.Tensor] = None
        self._clips = 0
        self._members = None

    def update(self, pred, true):  # one sample: nothing an ensemble score can use
        self._members = 1

    @abstractmethod
    def quantities(self, preds: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
        """``[len(parts), B, T]`` pixel means of each quantity for every clip and frame."""

    def update_ensemble(self, preds, true):
        if preds.ndim != 6 or preds.shape[1:] != true.shape:
            raise ValueError(f"{self.name}: samples {tuple(preds.shape)} must be [K, *{tuple(true.shape)}]")
        self._members = preds.shape[0]
        if preds.shape[0] < 2:
            return
        values = self.quantities(preds.double(), true.double()).cpu()
        self._sums = values.sum(1) if self._sums is None else self._sums + values.sum(1)
        self._clips += true.shape[0]

    def unavailable(self) -> Optional[NotAvailable]:
        if self._sums is None:
            return NotAvailable(f"{self.name} needs K >= 2 samples per clip of a stochastic model "
                                f"(got {self._members or 1}; see --samples)")
        return None

    def per_frame_parts(self) -> torch.Tensor:
        return self._sums / self._clips  # [parts, T]


class CRPS(_Ensemble):
    """CRPS = E|X - Y| - 0.5 E|X - X'| per pixel, with the unbiased ("fair") spread estimate
    sum_{i,j} |X_i - X_j| / (K (K - 1)) over the K samples, averaged over pixels, frames and clips."""

    parts = ("skill", "spread")

    def quantities(self, preds, true):
        skill = (preds - true.unsqueeze(0)).abs().mean(0)
        k = preds.shape[0]
        ranks = preds.argsort(0).argsort(0).to(preds.dtype) + 1  # 1..K along the samples
        # sum_{i,j} |X_i - X_j| = 2 sum_i (2 rank_i - K - 1) X_i  (each X_i counted against the ones below it)
        spread = 2.0 * ((2.0 * ranks - k - 1.0) * preds).sum(0) / (k * (k - 1.0))
        dims = (-3, -2, -1)
        return torch.stack([skill.mean(dims), spread.mean(dims)])

    def compute(self) -> Dict[str, Union[float, NotAvailable]]:
        missing = self.unavailable()
        if missing:
            return {self.name: missing}
        skill, spread = self.per_frame_parts()
        return {self.name: float((skill - 0.5 * spread).mean())}

    def per_frame(self) -> Optional[Dict[str, List[float]]]:
        if self.unavailable():
            return None
        skill, spread = self.per_frame_parts()
        return {self.name: [float(v) for v in skill - 0.5 * spread]}


class SpreadSkill(_Ensemble):
    """The spread / skill ratio: sqrt(mean ensemble variance, ddof 1) / RMSE of the ensemble mean, each a mean
    over pixels, frames and clips before the root (about 1 for a well-dispersed ensemble; below 1:
    over-confident)."""

    parts = ("variance", "squared_error")

    def quantities(self, preds, true):
        variance = preds.var(0, unbiased=True)
        error = (preds.mean(0) - true) ** 2
        dims = (-3, -2, -1)
        return torch.stack([variance.mean(dims), error.mean(dims)])

    def compute(self):
        missing = self.unavailable()
        if missing:
            return {self.name: missing}
        variance, error = self.per_frame_parts()
        return {self.name: float(variance.mean().sqrt() / error.mean().sqrt())}

    def per_frame(self):
        if self.unavailable():
            return None
        variance, error = self.per_frame_parts()
        return {self.name: [float(v) for v in variance.sqrt() / error.sqrt()]}


def build(name: str, context: MetricContext) -> Metric:
    return {"crps": CRPS, "spread_skill": SpreadSkill}[name](name, context)
