"""WaST: a 3-D Haar wavelet encoder / decoder around time-frequency aware blocks, rolled out in chunks."""
import math
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stbench import STModel, UserError

from . import ARCH_KEYS, CUTMODES
from .wavelet import dwt, haar_filters_3d, high_frequency_focal_loss, idwt

# literals of the reference's blocks: the small-kernel branch and the mixer's depthwise convolution (the
# large kernels, 51 in the outer stages and 21 at the bottleneck in WaST_level1, are hyper-parameters)
SMALL_KERNEL, MIXER_KERNEL = 5, 7
LAYER_SCALE_INIT = 1e-2
GATE_REDUCTION = 4  # FrequencyAttention(reduction=4): hidden width max(8, dim // 4)


def make_divisible(value: float, divisor: int = 8) -> int:
    """The nearest multiple of ``divisor`` (at least ``divisor``), raised once more if rounding lost over 10%
    (timm's rule for the expanded width of an inverted residual, which the reference uses)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class DropPath(nn.Module):
    """Stochastic depth: in training, zero a sample's branch with probability ``rate`` and rescale the rest."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = float(rate)

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        if keep > 0.0:
            mask.div_(keep)
        return x * mask


def conv3d_norm_gelu(c_in: int, c_out: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(c_in, c_out, 3, padding=1, groups=groups), nn.BatchNorm3d(c_out), nn.GELU())


def depthwise_norm(dim: int, kernel) -> nn.Sequential:
    padding = (kernel[0] // 2, kernel[1] // 2)  # odd kernels: 'same'
    return nn.Sequential(nn.Conv2d(dim, dim, kernel, padding=padding, groups=dim), nn.BatchNorm2d(dim))


class AxisGate(nn.Module):
    """Gates a map by a sigmoid per row and a sigmoid per column, from its row and column means
    (squeezed together through one 1x1 convolution, BatchNorm and hard-swish)."""

    def __init__(self, dim: int, reduction: int = GATE_REDUCTION):
        super().__init__()
        hidden = max(8, dim // reduction)
        self.squeeze = nn.Conv2d(dim, hidden, 1)
        self.norm = nn.BatchNorm2d(hidden)
        self.gate_h = nn.Conv2d(hidden, dim, 1)
        self.gate_w = nn.Conv2d(hidden, dim, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        rows = F.adaptive_avg_pool2d(x, (h, 1))
        cols = F.adaptive_avg_pool2d(x, (1, w)).transpose(2, 3)
        y = self.norm(self.squeeze(torch.cat([rows, cols], dim=2)))
        y = y * (F.relu6(y + 3.0) / 6.0)  # hard-swish
        rows, cols = torch.split(y, [h, w], dim=2)
        return x * self.gate_w(cols.transpose(2, 3)).sigmoid() * self.gate_h(rows).sigmoid()


class SqueezeExcite(nn.Module):
    def __init__(self, dim: int, ratio: float = 0.25):
        super().__init__()
        reduced = round(dim * ratio)
        self.reduce = nn.Conv2d(dim, reduced, 1)
        self.restore = nn.Conv2d(reduced, dim, 1)

    def forward(self, x):
        return x * self.restore(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))).sigmoid()


class InvertedBottleneck(nn.Module):
    """1x1 expansion, 7x7 depthwise, squeeze-excitation, 1x1 projection (BatchNorm after each, ReLU after
    the first two; no shortcut): the 'temporal mixer' over the frames folded into channels."""

    def __init__(self, dim: int, ratio: float):
        super().__init__()
        mid = make_divisible(dim * ratio)
        self.expand = nn.Conv2d(dim, mid, 1, bias=False)
        self.expand_norm = nn.BatchNorm2d(mid)
        self.depthwise = nn.Conv2d(mid, mid, MIXER_KERNEL, padding=MIXER_KERNEL // 2, groups=mid, bias=False)
        self.depthwise_norm = nn.BatchNorm2d(mid)
        self.excite = SqueezeExcite(mid)
        self.project = nn.Conv2d(mid, dim, 1, bias=False)
        self.project_norm = nn.BatchNorm2d(dim)

    def forward(self, x):
        x = F.relu(self.expand_norm(self.expand(x)))
        x = F.relu(self.depthwise_norm(self.depthwise(x)))
        return self.project_norm(self.project(self.excite(x)))


class FrequencyBlock(nn.Module):
    """The time-frequency aware block on ``[B, C*T, H, W]``.

    Token mixing: the sum of a tall (k x 5) and a wide (5 x k) depthwise branch, gated by one
    :class:`AxisGate` (the large, low-frequency receptive field), plus a 5 x 5 depthwise branch gated by
    another (local, high-frequency detail); then the inverted-bottleneck mixer. Both residual branches
    share one layer scale, as in the reference.
    """

    def __init__(self, dim: int, kernel: int, mlp_ratio: float, drop_path: float = 0.0):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.tall = depthwise_norm(dim, (kernel, SMALL_KERNEL))
        self.wide = depthwise_norm(dim, (SMALL_KERNEL, kernel))
        self.local = depthwise_norm(dim, (SMALL_KERNEL, SMALL_KERNEL))
        self.low_gate = AxisGate(dim)
        self.high_gate = AxisGate(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mixer = InvertedBottleneck(dim, mlp_ratio)
        self.scale = nn.Parameter(torch.full((dim,), LAYER_SCALE_INIT))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        scale = self.scale.unsqueeze(-1).unsqueeze(-1)
        y = self.norm1(x)
        mixed = self.low_gate(self.tall(y) + self.wide(y)) + self.high_gate(self.local(y))
        x = x + self.drop_path(scale * mixed)
        return x + self.drop_path(scale * self.mixer(self.norm2(x)))


def fold(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B, C*T, H, W]`` (channel-major, the reference's ``(c t)``)."""
    b, c, t, h, w = x.shape
    return x.reshape(b, c * t, h, w)


def unfold(x: torch.Tensor, t: int) -> torch.Tensor:
    b, ct, h, w = x.shape
    return x.reshape(b, ct // t, t, h, w)


class WaSTModel(STModel):
    """WaST (one wavelet level) built for one task.

    One pass maps ``t_in`` frames to the next ``t_in``: a 3x3x3 stem, the first stage of
    :class:`FrequencyBlock` s over frames folded into channels (full resolution), a 3-D Haar
    transform down (the spatial-low bands LLL/LLH go on, refined with an embedding of the raw input's
    own wavelet bands; the six spatial-high bands are kept), the bottleneck stage at half resolution
    and twice the width, the inverse transform up (the kept bands through a grouped convolution), a
    1 x 1 fusion with the first stage's output, the last stage and a 3x3x3 read-out. ``forward(x,
    t_out)`` truncates one pass or feeds each predicted chunk back in (OpenSTL's SimVP rollout, which
    its WaST method inherits).
    """

    def __init__(self, task, *, encoder_dim: int, block_list: Sequence[int], mlp_ratio: float = 4.0,
                 large_kernel: int = 51, bottleneck_kernel: int = 21, loss_weight: float = 0.001,
                 drop_path: float = 0.0, cutmode: str = "standard", cutoff: int = 0):
        super().__init__()
        check_settings(task, encoder_dim, block_list, mlp_ratio, large_kernel, bottleneck_kernel, loss_weight,
                       drop_path, cutmode, cutoff)
        c = task.shape[0]
        t = self.t_in = task.t_in
        d = encoder_dim
        self.block_list = [int(n) for n in block_list]
        self.loss_weight, self.drop_path, self.cutmode, self.cutoff = float(loss_weight), float(drop_path), cutmode, int(cutoff)
        self.register_buffer("haar", haar_filters_3d(), persistent=False)
        self.stem = conv3d_norm_gelu(c, d)
        self.encoder_blocks = nn.Sequential(*[FrequencyBlock(d * t, large_kernel, mlp_ratio)
                                              for _ in range(self.block_list[0])])
        # wavelet embedding (down): refine, transform, lift the spatial-low bands; embed the input's bands
        self.down_refine = conv3d_norm_gelu(d, d)
        self.down_lift = conv3d_norm_gelu(d, 2 * d)
        self.down_embed = nn.Conv3d(4 * c, 2 * d, 3, padding=1)
        self.bottleneck_blocks = nn.Sequential(*[FrequencyBlock(2 * d * t, bottleneck_kernel, mlp_ratio)
                                                 for _ in range(self.block_list[1])])
        # wavelet reconstruction (up): the low bands from the bottleneck, the six kept bands per group
        self.up_low = conv3d_norm_gelu(2 * d, d)
        self.up_high = conv3d_norm_gelu(6 * d, 6 * d, groups=6)
        self.fuse = nn.Conv2d(2 * d * t, d * t, 3, padding=1)
        self.decoder_blocks = nn.Sequential(*[FrequencyBlock(d * t, large_kernel, mlp_ratio)
                                              for _ in range(self.block_list[2])])
        self.head = nn.Sequential(nn.BatchNorm3d(d), nn.GELU(), nn.Conv3d(d, c, 3, padding=1))
        self.set_drop_path(self.scheduled_rate(0))

    # ------------------------------------------------------------------------------- stochastic depth

    def scheduled_rate(self, epoch: int) -> float:
        """The drop-path rate of ``epoch`` under OpenSTL's drop scheduler (constant, then cut off)."""
        if self.cutmode == "early":
            return self.drop_path if epoch < self.cutoff else 0.0
        if self.cutmode == "late":
            return 0.0 if epoch < self.cutoff else self.drop_path
        return self.drop_path

    def set_drop_path(self, rate: float) -> None:
        """Rates rising linearly from 0 to ``rate`` over all blocks, stage after stage."""
        blocks = [*self.encoder_blocks, *self.bottleneck_blocks, *self.decoder_blocks]
        rates = torch.linspace(0, rate, len(blocks), device="cpu").tolist()  # float32 steps, as the reference
        for block, value in zip(blocks, rates):
            block.drop_path.rate = value

    def on_epoch_start(self, epoch: int) -> None:
        self.set_drop_path(self.scheduled_rate(epoch))

    # ---------------------------------------------------------------------------------------- passes

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One pass: ``[B, t_in, C, H, W]`` -> the next ``t_in`` frames."""
        if x.shape[1] != self.t_in:
            raise ValueError(f"this model was built for {self.t_in} input frames, got {x.shape[1]}")
        raw = x.transpose(1, 2)  # [B, C, T, H, W]
        t = self.t_in
        z = unfold(self.encoder_blocks(fold(self.stem(raw))), t)
        skip = fold(z)
        # down: the raw input's bands, split by their last (W) filter, stacked along time
        bands = dwt(raw, self.haar)
        embedded = self.down_embed(torch.cat([torch.cat(bands[0::2], dim=1), torch.cat(bands[1::2], dim=1)], dim=2))
        bands = dwt(self.down_refine(z), self.haar)
        kept = torch.cat(bands[2:], dim=1)
        z = self.down_lift(torch.cat(bands[:2], dim=2)) + embedded
        z = unfold(self.bottleneck_blocks(fold(z)), t)
        # up
        low = torch.chunk(self.up_low(z), 2, dim=2)
        high = torch.chunk(self.up_high(kept), 6, dim=1)
        z = idwt([*low, *high], self.haar)
        z = unfold(self.decoder_blocks(self.fuse(torch.cat([fold(z), skip], dim=1))), t)
        return self.head(z).transpose(1, 2)

    def forward(self, x: torch.Tensor, t_out: int) -> torch.Tensor:
        chunks, produced, current = [], 0, x
        while produced < t_out:
            current = self.step(current)
            chunks.append(current)
            produced += current.shape[1]
        return torch.cat(chunks, dim=1)[:, :t_out]

    def loss(self, x, y, step):
        """MSE plus ``loss_weight`` x the high-frequency focal loss (``openstl/methods/wast.py``)."""
        pred = self(x, y.shape[1])
        loss = F.mse_loss(pred, y)
        if self.loss_weight > 0:
            loss = loss + self.loss_weight * high_frequency_focal_loss(pred, y)
        return loss

    def record_notes(self):
        return {"drop_path_schedule": {"cutmode": self.cutmode, "cutoff_epoch": self.cutoff, "rate": self.drop_path}}


def check_settings(task, encoder_dim, block_list, mlp_ratio, large_kernel, bottleneck_kernel, loss_weight, drop_path,
                   cutmode, cutoff) -> None:
    """One-line errors for settings WaST cannot take."""
    t, (c, h, w) = task.t_in, task.shape
    if t % 2 or h % 2 or w % 2:
        raise UserError(f"wast halves time, height and width with one Haar level and restores them, so T_in, H "
                        f"and W must be even; {task.name} has T_in={t}, H={h}, W={w}")
    if not isinstance(encoder_dim, int) or isinstance(encoder_dim, bool) or encoder_dim < 1:
        raise UserError(f"wast: encoder_dim must be a whole number >= 1, got {encoder_dim!r}")
    if (not isinstance(block_list, (list, tuple)) or len(block_list) != 3
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in block_list)):
        raise UserError(f"wast: block_list must be three whole numbers >= 1 (blocks before, at and after the "
                        f"wavelet bottleneck), got {block_list!r}")
    if not (isinstance(mlp_ratio, (int, float)) and mlp_ratio > 0 and math.isfinite(mlp_ratio)):
        raise UserError(f"wast: mlp_ratio must be a number > 0, got {mlp_ratio!r}")
    for key, value in (("large_kernel", large_kernel), ("bottleneck_kernel", bottleneck_kernel)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1 or value % 2 == 0:
            raise UserError(f"wast: {key} must be an odd whole number >= 1 (a 'same' depthwise kernel), got {value!r}")
    if not loss_weight >= 0:
        raise UserError(f"wast: loss_weight must be >= 0 (0 turns the high-frequency focal loss off), got {loss_weight!r}")
    if not 0 <= drop_path < 1:
        raise UserError(f"wast: drop_path must be in [0, 1), got {drop_path!r}")
    if cutmode not in CUTMODES:
        raise UserError(f"wast: cutmode must be one of {', '.join(CUTMODES)}, got {cutmode!r}")
    if not isinstance(cutoff, int) or cutoff < 0:
        raise UserError(f"wast: cutoff (epochs) must be a whole number >= 0, got {cutoff!r}")


def build_wast(task, hparams):
    unknown = sorted(set(hparams) - set(ARCH_KEYS))
    if unknown:
        raise UserError(f"wast does not take {', '.join(unknown)}; known: {', '.join(ARCH_KEYS)}")
    return WaSTModel(task, **hparams)
