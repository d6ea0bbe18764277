"""The pixel metrics' implementation (MSE, MAE, RMSE, SSIM, PSNR) in the OpenSTL conventions, vectorised in torch."""
import torch

from .base import FrameMetric


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


def _box_mean(x, k):
    """Mean over every k x k window fully inside the image ('valid'), by running sums."""
    c = x.cumsum(-1)
    c = torch.cat([c[..., k - 1:k], c[..., k:] - c[..., :-k]], dim=-1)
    c = c.cumsum(-2)
    c = torch.cat([c[..., k - 1:k, :], c[..., k:, :] - c[..., :-k, :]], dim=-2)
    return c / (k * k)


def ssim_frames(pred, true, data_range, win_size=7, k1=0.01, k2=0.03, chunk=None):
    """SSIM per frame of ``[B, T, C, H, W]`` tensors, equal to skimage's
    ``structural_similarity`` (uniform window, sample covariance, channels
    averaged). skimage filters with reflection then crops ``win_size // 2``
    pixels from each border; a 'valid' box filter computes exactly the kept part.

    ``data_range`` may be a tuple: then one ``[B, T]`` tensor per range comes back, from one pass
    (the window statistics do not depend on the range, only the constants C1, C2 do).

    Speed: on a CPU frames go through in chunks small enough to stay in cache
    (a GPU takes them at once), in float32; each frame is first shifted by the target's mean so that the
    variance terms (E[x^2] - E[x]^2) keep their precision for large values.
    """
    ranges = tuple(data_range) if isinstance(data_range, (tuple, list)) else (data_range,)
    b, t, c, h, w = pred.shape
    if min(h, w) < win_size:
        raise ValueError(f"ssim: frames of {h}x{w} are smaller than the {win_size}x{win_size} window")
    x_all = pred.reshape(b * t * c, h, w)
    y_all = true.reshape(b * t * c, h, w)
    n = win_size * win_size
    cov_norm = n / (n - 1)
    if chunk is None:
        chunk = 32 if x_all.device.type == "cpu" else b * t * c
    out = [[] for _ in ranges]
    for start in range(0, b * t * c, chunk):
        x, y = x_all[start:start + chunk].double(), y_all[start:start + chunk].double()
        shift = y.mean(dim=(1, 2), keepdim=True)
        xs, ys = (x - shift).float(), (y - shift).float()
        means = _box_mean(torch.stack([xs, ys, xs * xs, ys * ys, xs * ys], dim=1), win_size)
        mx, my, mxx, myy, mxy = means.unbind(1)
        vx, vy = cov_norm * (mxx - mx * mx), cov_norm * (myy - my * my)
        vxy = cov_norm * (mxy - mx * my)
        shift = shift.float()
        ux, uy = mx + shift, my + shift
        for values, width in zip(out, ranges):
            c1, c2 = (k1 * width) ** 2, (k2 * width) ** 2
            s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
            values.append(s.double().mean(dim=(1, 2)))
    frames = [torch.cat(values).reshape(b, t, c).mean(dim=2) for values in out]
    return tuple(frames) if isinstance(data_range, (tuple, list)) else frames[0]


OPENSTL_SSIM_KEY = "ssim_openstl"


class _Precomputed(FrameMetric):
    """Streams per-frame values that its owner computed in the same pass (SSIM's second convention)."""

    pending = None

    def frame_values(self, pred, true):
        return self.pending


class SSIM(FrameMetric):
    """Per-frame SSIM on clipped predictions, reported under two keys from one pass:

    - ``ssim``: data_range = the dataset's value range (1.0 for [0, 1] data), what scikit-image's
      ``structural_similarity`` asks for today; ``options['ssim_data_range']`` overrides it.
    - ``ssim_openstl``: data_range = twice the dataset's range, always. OpenSTL's published tables
      were computed with scikit-image <= 0.19, which took data_range 2.0 (the -1..1 range of float
      dtypes) for float frames in [0, 1]; SSIM is unchanged when frames and range scale together, so
      twice the range reproduces that convention for data in any native range. This is the value
      comparable with published SSIM figures.
    """

    def reset(self):
        super().reset()
        self.openstl = _Precomputed(OPENSTL_SSIM_KEY, self.context)

    def frame_values(self, pred, true):
        data_range = float(self.context.options.get("ssim_data_range", self.context.data_range))
        own, self.openstl.pending = ssim_frames(self.context.clip(pred), true,
                                                (data_range, 2.0 * self.context.data_range))
        self.openstl.update(pred, true)
        return own

    def compute(self):
        return {**super().compute(), **self.openstl.compute()}

    def per_frame(self):
        return {**super().per_frame(), **self.openstl.per_frame()}

    def per_clip(self):
        clips = super().per_clip()
        return None if clips is None else {**clips, **self.openstl.per_clip()}



METRIC_CLASSES = {"mse": MSE, "mae": MAE, "rmse": RMSE, "ssim": SSIM, "psnr": PSNR}


def build(name, context):
    """The pixel metric ``name`` scoring under ``context`` (what each pixel MetricSpec's ``build`` calls)."""
    return METRIC_CLASSES[name](name, context)
