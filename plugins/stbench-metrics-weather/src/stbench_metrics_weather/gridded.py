"""Latitude-weighted scores on a lat-lon grid (WeatherBench / PredBench): WRMSE, WMAE and ACC.

Row ``i`` of a frame is weighted by ``cos(lat_i) / mean(cos(lat))``; latitudes come from
``options['latitudes']`` or an equiangular global grid. Channels are scored separately and averaged.
"""
import torch

from stbench import FrameMetric, MetricContext, UserError

from .options import Unavailable, array_option, latitudes


class LatitudeWeighted(FrameMetric):
    """A frame metric with the latitude weights of the frame's rows, ``[H, 1]``, at hand."""

    def __init__(self, name: str, context: MetricContext):
        super().__init__(name, context)
        self._weights = None

    def weights(self, like: torch.Tensor) -> torch.Tensor:
        rows = like.shape[-2]
        if self._weights is None or self._weights.shape[0] != rows:
            w = torch.cos(torch.deg2rad(latitudes(self.context.options, rows)))
            self._weights = (w / w.mean()).view(rows, 1)
        return self._weights.to(like.device, like.dtype)


class WRMSE(LatitudeWeighted):
    """Per frame and channel ``sqrt(mean_{lat,lon} w * (pred - true)^2)``, averaged (WeatherBench RMSE)."""

    def frame_values(self, pred, true):
        return (self.weights(pred) * (pred - true) ** 2).mean(dim=(3, 4)).sqrt().mean(dim=2)


class WMAE(LatitudeWeighted):
    """Per frame ``mean_{C,lat,lon} w * |pred - true|``."""

    def frame_values(self, pred, true):
        return (self.weights(pred) * (pred - true).abs()).mean(dim=(2, 3, 4))


class ACC(LatitudeWeighted):
    """Anomaly correlation per frame and channel: anomalies ``x' = x - climatology``,
    ``sum w p' t' / sqrt(sum w p'^2 * sum w t'^2)`` over the grid, averaged over channels; 0 where an
    anomaly field is identically 0. The climatology (``options['climatology']``, native units,
    ``[H, W]``, ``[C, H, W]`` or ``[T_out, C, H, W]``) should be the training-period mean."""

    def __init__(self, name: str, context: MetricContext, climatology: torch.Tensor):
        super().__init__(name, context)
        self.climatology = climatology

    def frame_values(self, pred, true):
        try:
            climatology = torch.broadcast_to(self.climatology.to(pred.device, pred.dtype), pred.shape[1:])
        except RuntimeError:
            raise UserError(f"metric option 'climatology' of shape {tuple(self.climatology.shape)} does not fit "
                            f"frames [T, C, H, W] = {list(pred.shape[1:])}") from None
        w = self.weights(pred)
        p, t = pred - climatology, true - climatology
        covariance = (w * p * t).sum(dim=(3, 4))
        scale = ((w * p * p).sum(dim=(3, 4)) * (w * t * t).sum(dim=(3, 4))).sqrt()
        acc = torch.where(scale > 0, covariance / scale.clamp(min=torch.finfo(scale.dtype).tiny), 0.0)
        return acc.mean(dim=2)


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
