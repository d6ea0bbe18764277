"""Is a row degenerate? Simple statistics of a run's predictions against its targets, and the flags they raise.

A blank prediction scores well on mostly-black Moving MNIST frames, and a copy of the last observed frame scores
like persistence: a board that ranks such rows without saying so misleads. Every evaluation therefore records,
for its predictions and its targets in native units:

- the *spatial* standard deviation: the std over H x W of each (clip, frame, channel), averaged;
- the *temporal* standard deviation: the std over the predicted frames of each pixel, averaged (T_out > 1);
- the distance to the last observed frame: the mean squared difference between each predicted frame and the
  clip's last input frame. For the targets this is persistence's MSE, the yardstick.

and two flags follow from fixed thresholds (:data:`COLLAPSED_BELOW`, :data:`COPYING_BELOW`):

- ``collapsed``: the predictions' spatial std is below 20% of the targets' (near-constant frames);
- ``copying``: the predictions' distance to the last observed frame is below 10% of the targets' (the row is
  persistence in effect). Persistence itself is flagged: it copies by construction.

The board shows a flag beside the row's label, with its numbers in the notes, and hides nothing.
"""
from typing import Dict, List, Optional

import numpy as np

COLLAPSED_BELOW = 0.2
COPYING_BELOW = 0.1
FIELDS = ("pred_spatial_std", "true_spatial_std", "pred_temporal_std", "true_temporal_std", "copy_distance",
          "persistence_distance")


class Diagnostics:
    """Streams batches of ``(last, pred, true)``: the last observed frame [B, C, H, W] and predictions and targets
    [B, T, C, H, W], all in native units (torch tensors or numpy arrays); :meth:`result` gives the record entry."""

    def __init__(self):
        self.sums = dict.fromkeys(FIELDS, 0.0)
        self.counts = dict.fromkeys(FIELDS, 0)

    def _add(self, name: str, values: np.ndarray) -> None:
        self.sums[name] += float(values.sum(dtype=np.float64))
        self.counts[name] += int(values.size)

    def update(self, last, pred, true) -> None:
        last, pred, true = (np.asarray(_numpy(a), dtype=np.float64) for a in (last, pred, true))
        if not len(pred):
            return
        for prefix, frames in (("pred", pred), ("true", true)):
            flat = frames.reshape(*frames.shape[:3], -1)
            self._add(f"{prefix}_spatial_std", flat.std(-1))
            if frames.shape[1] > 1:
                self._add(f"{prefix}_temporal_std", frames.std(1))
            distance = ((frames - last[:, None]) ** 2).reshape(*frames.shape[:2], -1).mean(-1)
            self._add("copy_distance" if prefix == "pred" else "persistence_distance", distance)

    def result(self) -> Optional[Dict]:
        """``{field: mean, ..., "flags": [...]}`` or None before any batch."""
        if not self.counts["pred_spatial_std"]:
            return None
        values = {name: self.sums[name] / self.counts[name] for name in FIELDS if self.counts[name]}
        values["flags"] = flags_of(values)
        return values


def _numpy(array):
    return array.detach().cpu().numpy() if hasattr(array, "detach") else array


def _ratio(values: Dict, numerator: str, denominator: str) -> Optional[float]:
    top, bottom = values.get(numerator), values.get(denominator)
    if top is None or bottom is None or bottom <= 0:
        return None
    return float(top) / float(bottom)


def ratios(values: Dict) -> Dict[str, Optional[float]]:
    """The three ratios the flags read: predictions' statistic / targets'."""
    return {"spatial_std": _ratio(values, "pred_spatial_std", "true_spatial_std"),
            "temporal_std": _ratio(values, "pred_temporal_std", "true_temporal_std"),
            "copy": _ratio(values, "copy_distance", "persistence_distance")}


def flags_of(values: Dict) -> List[str]:
    found = ratios(values)
    flags = []
    if found["spatial_std"] is not None and found["spatial_std"] < COLLAPSED_BELOW:
        flags.append("collapsed")
    if found["copy"] is not None and found["copy"] < COPYING_BELOW:
        flags.append("copying")
    return flags


def from_sample(sample: Dict[str, np.ndarray]) -> Optional[Dict]:
    """The diagnostics of one stored sample clip (``sample.npz``: inputs, truth, pred, each [T, C, H, W]), for
    records written before evaluations kept them; marked ``"from": "sample clip"``."""
    try:
        inputs, truth, pred = (np.asarray(sample[k], dtype=np.float64) for k in ("inputs", "truth", "pred"))
    except KeyError:
        return None
    if inputs.ndim != 4 or truth.shape != pred.shape or truth.ndim != 4:
        return None
    found = Diagnostics()
    found.update(inputs[None, -1], pred[None], truth[None])
    values = found.result()
    if values is not None:
        values["from"] = "sample clip"
    return values


def describe(values: Dict) -> str:
    """One note: the numbers behind a row's flags."""
    found = ratios(values)
    parts = []
    if found["spatial_std"] is not None:
        parts.append(f"spatial std {values['pred_spatial_std']:.3g} against the targets' "
                     f"{values['true_spatial_std']:.3g} (ratio {found['spatial_std']:.2f}; collapsed below "
                     f"{COLLAPSED_BELOW})")
    if found["temporal_std"] is not None:
        parts.append(f"temporal std ratio {found['temporal_std']:.2f}")
    if found["copy"] is not None:
        parts.append(f"distance to the last observed frame {values['copy_distance']:.3g} against persistence's "
                     f"{values['persistence_distance']:.3g} (ratio {found['copy']:.2f}; copying below "
                     f"{COPYING_BELOW})")
    where = " (measured on the one stored sample clip: the record predates full diagnostics)" \
        if values.get("from") == "sample clip" else ""
    return "; ".join(parts) + where
