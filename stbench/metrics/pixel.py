"""Pixel metrics (MSE, MAE, RMSE, SSIM, PSNR) in the OpenSTL conventions, vectorised in torch."""
import torch
import torch.nn.functional as F

from ..hookspecs import hookimpl
from . import FrameMetric, MetricSpec


def _frame_error(pred, true, context, power):
    """Per-frame error: sum over C*H*W (OpenSTL), or a per-pixel mean for spatial_norm data."""
    err = (pred - true).abs() if power == 1 else (pred - true) ** 2
    reduce = err.mean if context.spatial_norm else err.sum
    return reduce(dim=(2, 3, 4))


class MSE(FrameMetric):
    def frame_values(self, pred, true):
        return _frame_error(pred, true, self.context, 2)


class MAE(FrameMetric):
    def frame_values(self, pred, true):
        return _frame_error(pred, true, self.context, 1)


class RMSE(MSE):
    """sqrt of the averaged MSE (not an average of per-clip roots), as OpenSTL reports it."""

    def finish(self, per_frame_mean, overall):
        return per_frame_mean.sqrt(), overall.sqrt()


class PSNR(FrameMetric):
    """20 log10(range / sqrt(mean squared error over C*H*W)) per frame, on clipped predictions."""

    def frame_values(self, pred, true):
        mse = ((self.context.clip(pred) - true) ** 2).mean(dim=(2, 3, 4))
        return 20 * torch.log10(self.context.data_range / mse.sqrt())


def ssim_frames(pred, true, data_range, win_size=7, k1=0.01, k2=0.03):
    """SSIM per frame of ``[B, T, C, H, W]`` tensors, equal to skimage's
    ``structural_similarity`` (uniform window, sample covariance, channels
    averaged). skimage filters with reflection then crops ``win_size // 2``
    pixels from each border; a 'valid' box filter computes exactly the kept part.
    """
    b, t, c, h, w = pred.shape
    if min(h, w) < win_size:
        raise ValueError(f"ssim: frames of {h}x{w} are smaller than the {win_size}x{win_size} window")
    x = pred.reshape(b * t * c, 1, h, w)
    y = true.reshape(b * t * c, 1, h, w)
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=1)
    means = F.avg_pool2d(stack, win_size, stride=1)
    ux, uy, uxx, uyy, uxy = means.unbind(1)
    n = win_size * win_size
    cov_norm = n / (n - 1)
    vx, vy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2)).reshape(b, t, c).mean(dim=2)


class SSIM(FrameMetric):
    """Per-frame SSIM on clipped predictions; ``options['ssim_data_range']`` overrides
    the dataset's range (2.0 reproduces OpenSTL's scikit-image<=0.19 tables)."""

    def frame_values(self, pred, true):
        data_range = float(self.context.options.get("ssim_data_range", self.context.data_range))
        return ssim_frames(self.context.clip(pred), true, data_range)


def _spec(name, cls, higher, text):
    return MetricSpec(name=name, build=lambda ctx: cls(name, ctx), higher_is_better=higher, description=text)


PIXEL_METRICS = [
    _spec("mse", MSE, False, "mean squared error, summed over C*H*W per frame (per-pixel mean for spatial_norm data)"),
    _spec("mae", MAE, False, "mean absolute error, summed over C*H*W per frame (per-pixel mean for spatial_norm data)"),
    _spec("rmse", RMSE, False, "square root of the averaged MSE"),
    _spec("ssim", SSIM, True, "structural similarity per frame, skimage conventions (7x7 uniform window)"),
    _spec("psnr", PSNR, True, "peak signal-to-noise ratio per frame, dB"),
]


@hookimpl
def stbench_register_metrics(register):
    for spec in PIXEL_METRICS:
        register(spec)
