"""MCVD's score-network building blocks (NCSN++ as the MCVD authors use it): the DDPM initialiser,
FIR resampling, the time embedding, multi-head self-attention, and the BigGAN-style residual blocks
with group normalisation (concatenation model) or SPADE normalisation (the SPATIN model).

Attribute names follow the authors' modules (``actnorm0``, ``Conv_0``, ``NIN_0``, ...) so their
state dicts load without renaming.
"""
import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

FIR_KERNEL = (1.0, 3.0, 3.0, 1.0)
SQRT2 = math.sqrt(2.0)


def variance_scaling_uniform(shape, scale: float = 1.0, in_axis: int = 1, out_axis: int = 0) -> torch.Tensor:
    """DDPM's initialiser: uniform with variance ``scale / fan_avg`` (scale 0 means 1e-10, as the reference)."""
    scale = 1e-10 if scale == 0 else scale
    receptive = math.prod(shape) / shape[in_axis] / shape[out_axis]
    fan_avg = (shape[in_axis] + shape[out_axis]) * receptive / 2
    bound = math.sqrt(3.0 * scale / fan_avg)
    return (torch.rand(*shape) * 2.0 - 1.0) * bound


def conv3x3(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(variance_scaling_uniform(conv.weight.shape, init_scale))
        conv.bias.zero_()
    return conv


def conv1x1(in_ch: int, out_ch: int, init_scale: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(in_ch, out_ch, 1)
    with torch.no_grad():
        conv.weight.copy_(variance_scaling_uniform(conv.weight.shape, init_scale))
        conv.bias.zero_()
    return conv


def dense(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        layer.weight.copy_(variance_scaling_uniform(layer.weight.shape))
        layer.bias.zero_()
    return layer


def group_count(channels: int) -> int:
    """min(channels // 4, 32), lowered until it divides ``channels`` (the reference's rule)."""
    groups = min(channels // 4, 32)
    while channels % groups:
        groups -= 1
    return groups


def timestep_embedding(steps: torch.Tensor, dim: int, max_positions: int = 10000) -> torch.Tensor:
    """Sinusoidal embedding of the (integer) noise-level index: [sin | cos], DDPM's form."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=steps.device)
                      * -(math.log(max_positions) / (half - 1)))
    angles = steps.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _fir(kernel: Sequence[float], gain: float, like: torch.Tensor) -> torch.Tensor:
    k = torch.tensor(kernel, dtype=like.dtype, device=like.device)
    k = torch.outer(k, k)
    k = k / k.sum() * gain
    return k.flip(0, 1)[None, None]


def _filter(x: torch.Tensor, kernel: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Each channel filtered on its own (as upfirdn2d's reference path: one single-channel convolution)."""
    b, c, h, w = x.shape
    out = F.conv2d(x.reshape(b * c, 1, h, w), kernel, stride=stride)
    return out.reshape(b, c, *out.shape[-2:])


def fir_upsample(x: torch.Tensor, kernel: Sequence[float] = FIR_KERNEL) -> torch.Tensor:
    """x2 upsampling with a FIR filter (StyleGAN2's upfirdn2d: zero insertion, pad (2, 1), filter)."""
    b, c, h, w = x.shape
    up = x.new_zeros(b, c, h, 2, w, 2)
    up[:, :, :, 0, :, 0] = x
    up = F.pad(up.reshape(b, c, 2 * h, 2 * w), (2, 1, 2, 1))
    return _filter(up, _fir(kernel, 4.0, x))


def fir_downsample(x: torch.Tensor, kernel: Sequence[float] = FIR_KERNEL) -> torch.Tensor:
    """x2 downsampling with a FIR filter (upfirdn2d: pad (1, 1), filter, keep every second sample)."""
    return _filter(F.pad(x, (1, 1, 1, 1)), _fir(kernel, 1.0, x), stride=2)


class NIN(nn.Module):
    """A per-pixel linear map, ``x @ W + b`` over channels (weights stored as ``W [in, out]``)."""

    def __init__(self, in_dim: int, out_dim: int, init_scale: float = 0.1):
        super().__init__()
        # the reference computes fans of [in, out] with in_axis=1: same fan_avg either way
        self.W = nn.Parameter(variance_scaling_uniform((in_dim, out_dim), init_scale))
        self.b = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x):
        y = torch.einsum("bhwc,cd->bhwd", x.permute(0, 2, 3, 1), self.W) + self.b
        return y.permute(0, 3, 1, 2)


class AttnBlockpp(nn.Module):
    """Multi-head self-attention over all pixels, residual with 1/sqrt(2) rescaling."""

    def __init__(self, channels: int, n_head_channels: int = -1):
        super().__init__()
        self.GroupNorm_0 = nn.GroupNorm(group_count(channels), channels, eps=1e-6)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=0.0)
        if n_head_channels == -1 or channels < n_head_channels:
            self.n_heads = 1
        else:
            if channels % n_head_channels:
                raise ValueError(f"attention over {channels} channels cannot use heads of {n_head_channels}")
            self.n_heads = channels // n_head_channels

    def forward(self, x):
        b, c, h, w = x.shape
        heads, d = self.n_heads, c // self.n_heads
        y = self.GroupNorm_0(x)
        q, k, v = (layer(y).reshape(b * heads, d, h, w) for layer in (self.NIN_0, self.NIN_1, self.NIN_2))
        weights = torch.einsum("bchw,bcij->bhwij", q, k) * d ** -0.5  # heads take contiguous channels
        weights = torch.softmax(weights.reshape(b * heads, h, w, h * w), dim=-1).reshape(b * heads, h, w, h, w)
        out = torch.einsum("bhwij,bcij->bchw", weights, v).reshape(b, c, h, w)
        return (x + self.NIN_3(out)) / SQRT2


class SPADE(nn.Module):
    """Space-time adaptive normalisation: a parameter-free group norm modulated by maps computed
    from the conditioning frames (resized to the feature map)."""

    def __init__(self, norm_nc: int, cond_ch: int, spade_dim: int):
        super().__init__()
        self.param_free_norm = nn.GroupNorm(group_count(norm_nc), norm_nc, affine=False, eps=1e-6)
        self.mlp_shared = nn.Sequential(conv3x3(cond_ch, spade_dim), nn.SiLU())
        self.mlp_gamma = conv3x3(spade_dim, norm_nc)
        self.mlp_beta = conv3x3(spade_dim, norm_nc)

    def forward(self, x, cond):
        cond = F.interpolate(cond, size=x.shape[-2:], mode="nearest")
        hidden = self.mlp_shared(cond)
        return self.param_free_norm(x) * (1 + self.mlp_gamma(hidden)) + self.mlp_beta(hidden)


class ActNorm(nn.Module):
    """Normalisation then SiLU; with a time embedding, the norm is scaled and shifted by it (AdaGN).

    ``kind`` is ``group`` (group norm, affine only without an embedding) or ``spade``.
    """

    def __init__(self, channels: int, emb_dim: Optional[int] = None, kind: str = "group",
                 cond_ch: int = 0, spade_dim: int = 128):
        super().__init__()
        self.kind = kind
        if emb_dim is not None:
            self.Dense_0 = dense(emb_dim, 2 * channels)
        if kind == "spade":
            self.Norm_0 = SPADE(channels, cond_ch, spade_dim)
        else:
            self.Norm_0 = nn.GroupNorm(group_count(channels), channels, eps=1e-5, affine=emb_dim is None)
        self.emb_dim = emb_dim

    def forward(self, x, emb=None, cond=None):
        h = self.Norm_0(x, cond) if self.kind == "spade" else self.Norm_0(x)
        if self.emb_dim is not None:
            scale, shift = self.Dense_0(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        return F.silu(h)


class ResnetBlockBigGAN(nn.Module):
    """BigGAN-style residual block with optional FIR up/down sampling; skip rescaled by 1/sqrt(2)."""

    def __init__(self, in_ch: int, out_ch: Optional[int] = None, temb_dim: Optional[int] = None,
                 up: bool = False, down: bool = False, dropout: float = 0.1, kind: str = "group",
                 cond_ch: int = 0, spade_dim: int = 128):
        super().__init__()
        out_ch = out_ch or in_ch
        self.actnorm0 = ActNorm(in_ch, temb_dim, kind, cond_ch, spade_dim)
        self.Conv_0 = conv3x3(in_ch, out_ch)
        self.actnorm1 = ActNorm(out_ch, temb_dim, kind, cond_ch, spade_dim)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv3x3(out_ch, out_ch, init_scale=0.0)
        self.reshape_skip = in_ch != out_ch or up or down
        if self.reshape_skip:
            self.Conv_2 = conv1x1(in_ch, out_ch)
        self.up, self.down = up, down

    def forward(self, x, temb=None, cond=None):
        h = self.actnorm0(x, temb, cond)
        if self.up:
            h, x = fir_upsample(h), fir_upsample(x)
        elif self.down:
            h, x = fir_downsample(h), fir_downsample(x)
        h = self.Conv_0(h)
        h = self.Dropout_0(self.actnorm1(h, temb, cond))
        h = self.Conv_1(h)
        if self.reshape_skip:
            x = self.Conv_2(x)
        return (x + h) / SQRT2
