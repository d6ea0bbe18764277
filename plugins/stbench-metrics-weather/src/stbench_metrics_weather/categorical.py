"""Categorical scores from a contingency table per threshold (CSI, POD, SUCR, BIAS), as PredBench
counts them for SEVIR: an event is a value >= threshold; NaN pixels count as no event in both."""
import torch

from stbench import Metric, MetricContext

from .options import array_option

SEVIR_THRESHOLDS = (16, 74, 133, 160, 181, 219)  # VIL, native 0..255
EPS = 1e-4  # PredBench's: a threshold never reached in either field scores 0, not NaN

SCORES = {
    "csi": lambda hits, misses, fas: hits / (hits + misses + fas + EPS),
    "pod": lambda hits, misses, fas: hits / (hits + misses + EPS),
    "sucr": lambda hits, misses, fas: hits / (hits + fas + EPS),
    "bias": lambda hits, misses, fas: (hits + fas) / (hits + misses + EPS),
}


class ContingencyScore(Metric):
    """Streams hits, misses and false alarms per (predicted frame, threshold) over the whole set.

    ``compute()`` gives ``{name}_{threshold}`` from the counts of all frames and ``{name}``, their mean
    over thresholds; ``per_frame()`` gives that mean for each predicted frame.
    Thresholds: ``options['csi_thresholds']`` (native units), default SEVIR's.
    """

    def __init__(self, name: str, context: MetricContext):
        self.name, self.context, self.score = name, context, SCORES[name]
        given = array_option(context.options, "csi_thresholds")
        self.thresholds = SEVIR_THRESHOLDS if given is None else tuple(float(t) for t in given.flatten())
        self.reset()

    def reset(self):
        self.counts = None  # [3 (hits, misses, false alarms), T, thresholds], int64

    def update(self, pred, true):
        if pred.shape != true.shape or pred.ndim != 5:
            raise ValueError(f"{self.name}: pred {tuple(pred.shape)} and true {tuple(true.shape)} "
                             "must both be [B, T, C, H, W]")
        valid = ~(pred.isnan() | true.isnan())
        counts = []
        for threshold in self.thresholds:
            observed, forecast = (true >= threshold) & valid, (pred >= threshold) & valid
            counts.append(torch.stack([(observed & forecast).sum(dim=(0, 2, 3, 4)),
                                       (observed & ~forecast).sum(dim=(0, 2, 3, 4)),
                                       (~observed & forecast).sum(dim=(0, 2, 3, 4))]))
        counts = torch.stack(counts, dim=-1).cpu()
        self.counts = counts if self.counts is None else self.counts + counts

    def _table(self):
        if self.counts is None:
            raise ValueError(f"{self.name}: no data was scored")
        return self.counts.double()

    def compute(self):
        per_threshold = self.score(*self._table().sum(dim=1))
        result = {f"{self.name}_{t:g}": float(v) for t, v in zip(self.thresholds, per_threshold)}
        result[self.name] = float(per_threshold.mean())
        return result

    def per_frame(self):
        return {self.name: [float(v) for v in self.score(*self._table()).mean(dim=-1)]}


def build(name):
    return lambda context: ContingencyScore(name, context)
