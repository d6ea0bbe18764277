"""The pixel metrics' implementation (MSE, MAE, RMSE, SSIM, PSNR) in the OpenSTL conventions, vectorised in torch."""
import os

import torch

from ..errors import UserError
from .base import FrameMetric


def _frame_error(pred, true, context, power):
    """Per-frame error: sum over C*H*W (OpenSTL), or a per-pixel mean for spatial_norm data."""
    err = (pred - true).abs() if power == 1 else (pred - true) ** 2
    reduce = err.mean if context.spatial_norm else err.sum
    return reduce(dim=(2, 3, 4))


class MSE(FrameMetric):
    single_thread = True

    def frame_values(self, pred, true):
        return _frame_error(pred, true, self.context, 2)


class MAE(FrameMetric):
    single_thread = True

    def frame_values(self, pred, true):
        return _frame_error(pred, true, self.context, 1)


class RMSE(MSE):
    """sqrt of the averaged MSE (not an average of per-clip roots), as OpenSTL reports it."""

    def finish(self, per_frame_mean, overall):
        return per_frame_mean.sqrt(), overall.sqrt()


class PSNR(FrameMetric):
    """20 log10(range / sqrt(mean squared error over C*H*W)) per frame, on clipped predictions."""

    single_thread = True

    def frame_values(self, pred, true):
        mse = ((self.context.clip(pred) - true) ** 2).mean(dim=(2, 3, 4))
        return 20 * torch.log10(self.context.data_range / mse.sqrt())


def _window_sums(maps, k, dim):
    """Sums of ``k`` consecutive values along ``dim`` ('valid'): windows of 2, 4 and 6 by doubling, then 7."""
    length = maps.shape[dim]

    def part(t, start, n):
        return t.narrow(dim, start, n)

    pairs = part(maps, 0, length - 1) + part(maps, 1, length - 1)
    if k == 7:  # skimage's default window: 4 additions instead of 6
        fours = part(pairs, 0, length - 3) + part(pairs, 2, length - 3)
        out = part(fours, 0, length - 6) + part(pairs, 4, length - 6)
        out += part(maps, 6, length - 6)
        return out
    out = part(maps, 0, length - k + 1).clone()
    for i in range(1, k):
        out += part(maps, i, length - k + 1)
    return out


def _ssim_chunk(x, y, constants, win_size):
    """Per-frame SSIM of frames ``x``, ``y`` ``[N, H, W]`` for each (C1, C2) in ``constants``: a list of ``[N]``
    float64 tensors. Window statistics in float32 of values shifted by the target frame's mean (so that
    E[x^2] - E[x]^2 keeps its precision for large values); the shift is subtracted in the input's dtype."""
    n = win_size * win_size
    cov_norm = n / (n - 1)  # sample covariance, as skimage
    shift = y.mean(dim=(1, 2), keepdim=True)
    maps = torch.empty((4, *x.shape), dtype=torch.float32, device=x.device)
    xs, ys = maps[0], maps[1]
    xs.copy_(x - shift)
    ys.copy_(y - shift)
    torch.mul(xs, xs, out=maps[2]).addcmul_(ys, ys)  # x^2 + y^2: only the sum of the variances is needed
    torch.mul(xs, ys, out=maps[3])
    sums = _window_sums(_window_sums(maps, win_size, 3), win_size, 2)
    sums *= 1.0 / n
    mx, my, mss, mxy = sums.unbind(0)
    shift = shift.float()
    ux, uy = mx + shift, my + shift
    mean_num = ux * uy
    mean_num *= 2
    mean_den = ux * ux
    mean_den.addcmul_(uy, uy)
    var_sum = mx * mx
    var_sum.addcmul_(my, my)
    var_sum = torch.sub(mss, var_sum, out=var_sum).mul_(cov_norm)  # vx + vy
    covar = mx * my
    covar = torch.sub(mxy, covar, out=covar).mul_(2 * cov_norm)  # 2 vxy
    out = []
    for c1, c2 in constants:
        s = (mean_num + c1).mul_(covar + c2)
        s.div_((mean_den + c1).mul_(var_sum + c2))
        out.append(s.sum(dim=(1, 2), dtype=torch.float64) / (s.shape[1] * s.shape[2]))
    return out


def _ssim_fused(x, y, constants, win_size: int = 7):
    """The same arithmetic as :func:`_ssim_chunk` written as one expression, for torch.compile to fuse into a
    single loop (STBENCH_SSIM=compiled); ``constants`` a float32 tensor (C1, C2, C1', C2') for two ranges (a
    tensor, so that another data range needs no recompiling)."""
    c1a, c2a, c1b, c2b = constants.unbind(0)
    n = win_size * win_size
    cov_norm = n / (n - 1)
    shift = y.mean(dim=(1, 2), keepdim=True)
    xs, ys = (x - shift).float(), (y - shift).float()
    mx = _window_sums(_window_sums(xs, win_size, 2), win_size, 1) / n
    my = _window_sums(_window_sums(ys, win_size, 2), win_size, 1) / n
    mss = _window_sums(_window_sums(xs * xs + ys * ys, win_size, 2), win_size, 1) / n
    mxy = _window_sums(_window_sums(xs * ys, win_size, 2), win_size, 1) / n
    shift = shift.float()
    ux, uy = mx + shift, my + shift
    mean_num, mean_den = 2 * ux * uy, ux * ux + uy * uy
    var_sum, covar = cov_norm * (mss - mx * mx - my * my), 2 * cov_norm * (mxy - mx * my)
    first = ((mean_num + c1a) * (covar + c2a)) / ((mean_den + c1a) * (var_sum + c2a))
    second = ((mean_num + c1b) * (covar + c2b)) / ((mean_den + c1b) * (var_sum + c2b))
    return first.double().mean(dim=(1, 2)), second.double().mean(dim=(1, 2))


SSIM_KERNELS = ("eager", "compiled")
_COMPILED = {}  # win_size -> the compiled kernel, or the reason it could not be compiled (str)


def ssim_kernel() -> str:
    """The SSIM kernel this process uses: ``STBENCH_SSIM`` (eager | compiled), default eager.

    ``compiled`` fuses the window sums and the formula into one loop with torch.compile (inductor; on a CPU it
    needs a C++ compiler): several times faster once compiled, which takes seconds (tens on a busy 2-core
    machine; the compiled code is cached on disk for later processes). Values agree with the eager kernel to
    float32 rounding (about 1e-7)."""
    chosen = os.environ.get("STBENCH_SSIM", "").strip().lower() or "eager"
    if chosen not in SSIM_KERNELS:
        raise UserError(f"STBENCH_SSIM={chosen!r} is not an SSIM kernel; use one of {', '.join(SSIM_KERNELS)} "
                        "(or leave it unset: eager)")
    return chosen


def compiled_ssim(win_size: int):
    """The compiled two-range kernel, or the one-line reason it is unavailable (a str); tried once per process."""
    if win_size not in _COMPILED:
        try:
            kernel = torch.compile(_ssim_fused, dynamic=False)
            probe = torch.rand(2, win_size + 1, win_size + 1)
            torch._dynamo.mark_dynamic(probe, 0)
            kernel(probe, probe, torch.tensor([1e-4, 9e-4, 4e-4, 3.6e-3]), win_size)
            _COMPILED[win_size] = kernel
        except Exception as error:  # no C++ compiler, an inductor fault: the eager kernel gives the same values
            _COMPILED[win_size] = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200] if str(error).strip() else ''}"
    return _COMPILED[win_size]


def ssim_frames(pred, true, data_range, win_size=7, k1=0.01, k2=0.03, chunk=None, kernel=None):
    """SSIM per frame of ``[B, T, C, H, W]`` tensors, equal to skimage's
    ``structural_similarity`` (uniform window, sample covariance, channels
    averaged). skimage filters with reflection then crops ``win_size // 2``
    pixels from each border; a 'valid' box filter computes exactly the kept part.

    ``data_range`` may be a tuple: then one ``[B, T]`` tensor per range comes back, from one pass
    (the window statistics do not depend on the range, only the constants C1, C2 do).

    Speed: frames go through in chunks of about 32k pixels, so that the working maps stay in cache and each
    operation is large enough to be worth its dispatch; four window maps (x, y, x^2 + y^2, xy: SSIM needs only
    the sum of the two variances) are summed by doubling (4 additions per direction for the 7x7 window).
    ``kernel`` (default :func:`ssim_kernel`) chooses eager torch or the compiled fused kernel; a kernel that
    fails to compile falls back to eager (:func:`ssim_kernel_used` says which ran and why).
    """
    ranges = tuple(data_range) if isinstance(data_range, (tuple, list)) else (data_range,)
    b, t, c, h, w = pred.shape
    if min(h, w) < win_size:
        raise ValueError(f"ssim: frames of {h}x{w} are smaller than the {win_size}x{win_size} window")
    x_all = pred.reshape(b * t * c, h, w)
    y_all = true.reshape(b * t * c, h, w)
    frames = b * t * c
    constants = [((k1 * width) ** 2, (k2 * width) ** 2) for width in ranges]
    fused = None
    if (kernel or ssim_kernel()) == "compiled" and len(constants) <= 2:
        fused = compiled_ssim(win_size)
        fused = None if isinstance(fused, str) else fused
    if chunk is None:  # the fused kernel keeps nothing but its inputs in memory: larger chunks, fewer calls
        chunk = max(1, (524288 if fused is not None else 32768) // (h * w)) if x_all.device.type == "cpu" \
            else max(frames, 1)
    if fused is not None:
        pairs = constants + constants[:1] * (2 - len(constants))
        pairs = torch.tensor([value for pair in pairs for value in pair], dtype=torch.float32, device=x_all.device)
    out = [torch.empty(frames, dtype=torch.float64, device=x_all.device) for _ in ranges]
    for start in range(0, frames, chunk):
        x, y = x_all[start:start + chunk], y_all[start:start + chunk]
        count = x.shape[0]
        if fused is not None:
            if count < 2:  # the kernel is compiled for any number of frames >= 2 (torch specialises 0 and 1)
                x, y = x.repeat(2, 1, 1), y.repeat(2, 1, 1)
            torch._dynamo.mark_dynamic(x, 0)
            torch._dynamo.mark_dynamic(y, 0)
            values = fused(x, y, pairs, win_size)[:len(constants)]
            values = [v[:count] for v in values]
        else:
            values = _ssim_chunk(x, y, constants, win_size)
        for target, value in zip(out, values):
            target[start:start + count] = value
    result = [values.reshape(b, t, c).mean(dim=2) for values in out]
    return tuple(result) if isinstance(data_range, (tuple, list)) else result[0]


def ssim_kernel_used(kernel=None) -> dict:
    """Which SSIM kernel ran in this process, for the record (with the reason where compiling failed)."""
    chosen = kernel or ssim_kernel()
    if chosen != "compiled":
        return {"kernel": "eager"}
    found = _COMPILED.get(7)
    if isinstance(found, str):
        return {"kernel": "eager", "note": f"STBENCH_SSIM=compiled failed to compile ({found}); ran eager"}
    return {"kernel": "compiled"}


OPENSTL_SSIM_KEY = "ssim_openstl"


class _Precomputed(FrameMetric):
    """Streams per-frame values that its owner computed in the same pass (SSIM's second convention)."""

    pending = None
    as_given = True

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

    as_given = True  # float32 window statistics of mean-shifted frames (see ssim_frames); no float64 copies
    single_thread = True

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

    def provenance(self):
        used = ssim_kernel_used()
        return {} if used == {"kernel": "eager"} else used  # records of the default kernel stay as they were



METRIC_CLASSES = {"mse": MSE, "mae": MAE, "rmse": RMSE, "ssim": SSIM, "psnr": PSNR}


def build(name, context):
    """The pixel metric ``name`` scoring under ``context`` (what each pixel MetricSpec's ``build`` calls)."""
    return METRIC_CLASSES[name](name, context)
