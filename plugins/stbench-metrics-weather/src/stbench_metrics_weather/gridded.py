"""Latitude-weighted scores on a lat-lon grid (WeatherBench / PredBench): WRMSE, WMAE and ACC, per channel.

Row ``i`` of a frame is weighted by ``cos(lat_i) / mean(cos(lat))``; latitudes come from
``options['latitudes']`` or an equiangular global grid. Each score is taken per clip, frame and channel.
The metric's own key (``wrmse``) averages the scored channels; with more than one scored channel it also
reports each channel (``wrmse_u10``, ``wrmse_z_500``) and each variable whose levels are among them
(``wrmse_z``: the mean over the channels named ``z_<level>``).

Options: ``channel_names`` (one name per channel; datasets declare them, default ``ch0``, ``ch1``, ...) and
``metric_channels`` (the names scored, e.g. PredBench's ``t2m, z_500, t_850``; default every channel).
"""
import re
from typing import Dict, List, Tuple

import torch

from stbench import FrameMetric, MetricContext, UserError

from .options import Unavailable, array_option, latitudes, name_option

LEVEL_CHANNEL = re.compile(r"^(?P<variable>.+)_(?P<level>\d+)$")


def channel_selection(options, count: int) -> Tuple[List[int], List[str]]:
    """(indices, names) of the channels scored, from ``channel_names`` and ``metric_channels``."""
    names = name_option(options, "channel_names")
    if names is None:
        names = [f"ch{i}" for i in range(count)]
    elif len(names) != count:
        raise UserError(f"metric option 'channel_names' names {len(names)} channels but the frames have {count}")
    chosen = name_option(options, "metric_channels")
    if chosen is None:
        return list(range(count)), list(names)
    unknown = [name for name in chosen if name not in names]
    if unknown or not chosen:
        raise UserError(f"metric option 'metric_channels': {', '.join(unknown) or 'nothing given'} not among the "
                        f"channels {', '.join(names)}")
    return [names.index(name) for name in chosen], list(chosen)


def variable_groups(names: List[str]) -> Dict[str, List[int]]:
    """Variables with several levels among ``names``: ``{variable: [positions of <variable>_<level>]}``."""
    groups: Dict[str, List[int]] = {}
    for position, name in enumerate(names):
        match = LEVEL_CHANNEL.match(name)
        if match:
            groups.setdefault(match["variable"], []).append(position)
    return {variable: members for variable, members in groups.items()
            if len(members) > 1 and variable not in names}


class LatitudeWeighted(FrameMetric):
    """A frame metric scored per channel, with the latitude weights of the frame's rows, ``[H, 1]``, at hand.

    Subclasses implement ``channel_values(pred, true) -> [B, T, C]`` on the scored channels.
    """

    def __init__(self, name: str, context: MetricContext):
        super().__init__(name, context)
        self._weights = None

    def reset(self):
        super().reset()
        self._channel_sum = None
        self._names: List[str] = []

    def weights(self, like: torch.Tensor) -> torch.Tensor:
        rows = like.shape[-2]
        if self._weights is None or self._weights.shape[0] != rows:
            w = torch.cos(torch.deg2rad(latitudes(self.context.options, rows)))
            self._weights = (w / w.mean()).view(rows, 1)
        return self._weights.to(like.device, like.dtype)

    def channel_values(self, pred, true) -> torch.Tensor:  # pragma: no cover - contract
        raise NotImplementedError

    def frame_values(self, pred, true):
        return self.channel_values(pred, true).mean(dim=2)

    def update(self, pred, true):
        if pred.shape != true.shape or pred.ndim != 5:
            raise ValueError(f"{self.name}: pred {tuple(pred.shape)} and true {tuple(true.shape)} "
                             "must both be [B, T, C, H, W]")
        indices, self._names = channel_selection(self.context.options, pred.shape[2])
        self._all_channels, self._indices = pred.shape[2], indices
        if indices != list(range(pred.shape[2])):
            pred, true = pred[:, :, indices], true[:, :, indices]
        values = self.channel_values(pred.double(), true.double()).cpu()  # [B, T, C]
        frames = values.mean(dim=2)
        self._clips.append(frames.mean(1))
        self._sum = frames.sum(0) if self._sum is None else self._sum + frames.sum(0)
        self._channel_sum = values.sum(0) if self._channel_sum is None else self._channel_sum + values.sum(0)
        self._count += pred.shape[0]

    def _breakdown(self) -> Dict[str, torch.Tensor]:
        """``{suffix: per-frame values}`` for each channel and multi-level variable, when several are scored."""
        if self._channel_sum is None or len(self._names) < 2:
            return {}
        per_channel = self._channel_sum / self._count  # [T, C]
        parts = {name: per_channel[:, i] for i, name in enumerate(self._names)}
        for variable, members in variable_groups(self._names).items():
            parts[variable] = per_channel[:, members].mean(dim=1)
        return parts

    def compute(self):
        result = super().compute()
        result.update({f"{self.name}_{suffix}": float(values.mean()) for suffix, values in self._breakdown().items()})
        return result

    def per_frame(self):
        result = super().per_frame()
        result.update({f"{self.name}_{suffix}": [float(v) for v in values]
                       for suffix, values in self._breakdown().items()})
        return result


class WRMSE(LatitudeWeighted):
    """Per clip, frame and channel ``sqrt(mean_{lat,lon} w * (pred - true)^2)`` (WeatherBench RMSE,
    PredBench's ``cal_WeightedRMSE``), averaged over clips and frames."""

    def channel_values(self, pred, true):
        return (self.weights(pred) * (pred - true) ** 2).mean(dim=(3, 4)).sqrt()


class WMAE(LatitudeWeighted):
    """Per clip, frame and channel ``mean_{lat,lon} w * |pred - true|``."""

    def channel_values(self, pred, true):
        return (self.weights(pred) * (pred - true).abs()).mean(dim=(3, 4))


class ACC(LatitudeWeighted):
    """Anomaly correlation per clip, frame and channel: anomalies ``x' = x - climatology``,
    ``sum w p' t' / sqrt(sum w p'^2 * sum w t'^2)`` over the grid; 0 where an anomaly field is identically 0.
    The climatology (``options['climatology']``, native units, ``[H, W]``, ``[C, H, W]`` or
    ``[T_out, C, H, W]`` over all the frames' channels) should be the training-period mean."""

    def __init__(self, name: str, context: MetricContext, climatology: torch.Tensor):
        super().__init__(name, context)
        self.climatology = climatology

    def channel_values(self, pred, true):
        shape = (pred.shape[1], self._all_channels) + tuple(pred.shape[3:])
        try:
            climatology = torch.broadcast_to(self.climatology.to(pred.device, pred.dtype), shape)
        except RuntimeError:
            raise UserError(f"metric option 'climatology' of shape {tuple(self.climatology.shape)} does not fit "
                            f"frames [T, C, H, W] = {list(shape)}") from None
        climatology = climatology[:, self._indices]
        w = self.weights(pred)
        p, t = pred - climatology, true - climatology
        covariance = (w * p * t).sum(dim=(3, 4))
        scale = ((w * p * p).sum(dim=(3, 4)) * (w * t * t).sum(dim=(3, 4))).sqrt()
        return torch.where(scale > 0, covariance / scale.clamp(min=torch.finfo(scale.dtype).tiny), 0.0)


def build_wrmse(context):
    return WRMSE("wrmse", context)


def build_wmae(context):
    return WMAE("wmae", context)


def build_acc(context):
    climatology = array_option(context.options, "climatology")
    if climatology is None:
        return Unavailable("acc", "acc needs a climatology: the metric option 'climatology' (training-period "
                                  "mean per grid point, native units, as a .npy file or an array)")
    return ACC("acc", context, climatology)
