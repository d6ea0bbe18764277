"""Categorical scores from a contingency table per threshold, as PredBench counts them for SEVIR: an event is a
value >= threshold. Per threshold, over the whole set: hits ``a``, misses ``c`` (observed, not forecast), false
alarms ``b`` (forecast, not observed) and correct rejections ``d``; pixels where either field is NaN are left
out of all four (PredBench sets both fields to "no event" there, which counts them as correct rejections; its
own comment says that masking is meant for the scores without ``d``).

- CSI ``a / (a + b + c)``, POD ``a / (a + c)``, SUCR ``a / (a + b)``, BIAS ``(a + b) / (a + c)``: as PredBench
  and Earthformer (``SEVIRSkillScore``).
- FAR, the false alarm *ratio* ``b / (a + b)`` (= 1 - SUCR; PredBench's ``cal_FAR``, whose docstring says
  "rate"; the false alarm rate ``b / (b + d)`` is another score).
- HSS, Heidke skill score ``2 (a d - b c) / ((a + c)(c + d) + (a + b)(b + d))``; PredBench's ``cal_HSS`` writes
  the same denominator expanded as ``c^2 + b^2 + 2 a d + (b + c)(a + d)``.
- ETS, equitable threat score (Gilbert skill score) ``(a - r) / (a + b + c - r)`` with the hits expected by
  chance ``r = (a + b)(a + c) / (a + b + c + d)`` (PredBench's ``cal_ETS``).

Every denominator gets PredBench's ``1e-4``, so a threshold never reached in either field scores 0, not NaN
(BIAS and FAR then 0 too). Counts are kept as int64 and scored in float64 (PredBench's int tensors overflow in
the HSS products on large sets).
"""
import torch

from stbench import Metric, MetricContext

from .options import array_option

SEVIR_THRESHOLDS = (16, 74, 133, 160, 181, 219)  # VIL, native 0..255
EPS = 1e-4  # PredBench's: a threshold never reached in either field scores 0, not NaN


def _ets(hits, misses, fas, crs):
    total = hits + misses + fas + crs
    chance = torch.where(total > 0, (hits + fas) * (hits + misses) / total.clamp(min=1), torch.zeros_like(total))
    return (hits - chance) / (hits + misses + fas - chance + EPS)


SCORES = {
    "csi": lambda hits, misses, fas, crs: hits / (hits + misses + fas + EPS),
    "pod": lambda hits, misses, fas, crs: hits / (hits + misses + EPS),
    "sucr": lambda hits, misses, fas, crs: hits / (hits + fas + EPS),
    "bias": lambda hits, misses, fas, crs: (hits + fas) / (hits + misses + EPS),
    "far": lambda hits, misses, fas, crs: fas / (hits + fas + EPS),
    "hss": lambda hits, misses, fas, crs: 2 * (hits * crs - misses * fas) / (
        (hits + misses) * (misses + crs) + (hits + fas) * (fas + crs) + EPS),
    "ets": _ets,
}


class ContingencyScore(Metric):
    """Streams hits, misses, false alarms and correct rejections per (predicted frame, threshold) over the set.

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
        self.counts = None  # [4 (hits, misses, false alarms, correct rejections), T, thresholds], int64

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
                                       (~observed & forecast & valid).sum(dim=(0, 2, 3, 4)),
                                       (~observed & ~forecast & valid).sum(dim=(0, 2, 3, 4))]))
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
